// containerd 1.6's CRI plugin on the same conflist, through crictl. Its network part is read
// from its own Prometheus timers, scraped before and after each RPC (one call in between, so a
// histogram's Δsum is that call's own time):
//   containerd_cri_sandbox_create_network_seconds   RunPodSandbox: netns + CNI ADD
//   containerd_cri_network_plugin_operations_duration_seconds_seconds{operation_type="set_up_pod"|"tear_down_pod"}
//                                                   the CNI ADD / DEL alone (go-metrics adds a
//                                                   second _seconds to this timer's name)
//   containerd_cri_sandbox_delete_network_seconds   StopPodSandbox: CNI DEL + netns removal
// Whole RPC times are crictl's wall times (a crictl process start included), for context.
import { randomInt } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CNI_BIN } from '../lib/config.mjs';
import { hex, log, onCleanup } from '../lib/cleanup.mjs';
import { hostPort } from '../lib/network.mjs';
import { histogramDelta, metric, parseMetrics } from '../lib/prometheus.mjs';
import { loadHarness } from './containerd-harness.mjs';
import { NotAvailable } from './errors.mjs';

const CREATE_NETWORK = 'containerd_cri_sandbox_create_network_seconds';
const DELETE_NETWORK = 'containerd_cri_sandbox_delete_network_seconds';
const PLUGIN_OPS = 'containerd_cri_network_plugin_operations_duration_seconds_seconds';
const SET_UP = { operation_type: 'set_up_pod' };
const TEAR_DOWN = { operation_type: 'tear_down_pod' };

/**
 * The shared body of both containerd contenders: what differs is the conflist containerd reads
 * and what must run beside it (prepare(scenario, dir) → {conflist, binDirs?, stop?}).
 */
export function containerdBase(run, { name, label, prepare, check }) {
  let harness;
  let cd;
  let stopCd = async () => undefined;
  let scenario;
  let dir;
  const live = new Set();

  function podConfig() {
    const s = hex(10);
    const cfg = {
      metadata: { name: `bench-${s}`, namespace: 'bench', uid: `uid-${s}`, attempt: 0 },
      hostname: `bench-${s}`,
      log_directory: join(dir, 'pods', s),
      labels: { app: 'bench', run: s },
      linux: { ...(cd.podLinux ?? {}) },
    };
    if (scenario.hostPort) cfg.port_mappings = [{ protocol: 0, container_port: 80, host_port: hostPort(), host_ip: '127.0.0.1' }];
    return cfg;
  }

  const scrape = async () => parseMetrics(await cd.scrapeMetrics());

  async function removeLive() {
    for (const id of [...live]) {
      try {
        await cd.crictl(['stopp', id]);
        await cd.crictl(['rmp', id]);
        live.delete(id);
      } catch (err) {
        log(`cleanup: ${name} pod ${id.slice(0, 12)}: ${err.message}`);
      }
    }
  }

  return {
    name,
    label,
    optional: true,
    async available() {
      harness = await loadHarness(run);
      if (harness.unavailable) return harness.unavailable;
      return check ? check() : undefined;
    },
    async setup(s) {
      scenario = s;
      dir = join(run.root, `${name}-${s.name}`);
      const confDir = join(dir, 'net.d');
      await mkdir(confDir, { recursive: true });
      await mkdir(join(dir, 'pods'), { recursive: true });
      const { conflist, binDirs, stop: stopBeside } = await prepare(s, dir);
      await writeFile(join(confDir, '10-bench.conflist'), JSON.stringify(conflist, null, 2));
      const metricsAddress = `127.0.0.1:${randomInt(20000, 40000)}`;
      const mine = await harness.startContainerd({ confDir, binDirs: binDirs ?? [CNI_BIN], metricsAddress }).catch(async (err) => {
        await stopBeside?.();
        throw err;
      });
      cd = mine;
      let stopped = false;
      stopCd = async () => {
        if (stopped) return;
        stopped = true;
        await removeLive();
        await mine.stop();
        await stopBeside?.();
      };
      onCleanup(`${name} (${dir})`, stopCd);
      // Fail here, not in the first cycle, when the timers are not where this file expects them.
      const m = await scrape();
      if (metric(m, 'process_cpu_seconds_total') === undefined) throw new NotAvailable(`containerd's metrics at ${metricsAddress} have no process_cpu_seconds_total`);
    },
    async runCycle({ detail }) {
      const t = {};
      const file = join(dir, `pod-${hex(8)}.json`);
      await writeFile(file, JSON.stringify(podConfig()));
      const m0 = detail ? await scrape() : undefined;
      let t0 = performance.now();
      const id = (await cd.crictl(['runp', file])).trim();
      t.run = performance.now() - t0;
      live.add(id);
      const m1 = detail ? await scrape() : undefined;
      t0 = performance.now();
      await cd.crictl(['stopp', id]);
      t.stop = performance.now() - t0;
      const m2 = detail ? await scrape() : undefined;
      t0 = performance.now();
      await cd.crictl(['rmp', id]);
      t.remove = performance.now() - t0;
      live.delete(id);
      t.cycle = t.run + t.stop + t.remove;
      if (detail) {
        const m3 = await scrape();
        const one = (h, what) => {
          if (h.count !== 1) throw new Error(`${name}: ${what} observed ${h.count} times in one call (expected 1)`);
          return h.ms;
        };
        t.runNetwork = one(histogramDelta(m0, m1, CREATE_NETWORK), 'sandbox_create_network');
        t.cniAdd = one(histogramDelta(m0, m1, PLUGIN_OPS, SET_UP), 'set_up_pod');
        t.stopNetwork = one(histogramDelta(m1, m2, DELETE_NETWORK), 'sandbox_delete_network');
        t.cniDel = one(histogramDelta(m1, m2, PLUGIN_OPS, TEAR_DOWN), 'tear_down_pod');
        // Remove repeats the teardown (a second DEL) in 1.6; whatever it observed is its network part.
        const rmNet = histogramDelta(m2, m3, DELETE_NETWORK);
        const rmCni = histogramDelta(m2, m3, PLUGIN_OPS, TEAR_DOWN);
        t.removeNetwork = rmNet.count > 0 ? rmNet.ms : rmCni.ms;
        t.removeCniDel = rmCni.ms;
        t.addOutsidePlugins = t.runNetwork - t.cniAdd;
        t.delOutsidePlugins = t.stopNetwork - t.cniDel;
      }
      return t;
    },
    teardown: () => stopCd(),
    // containerd's own process (Go's process collector); its shims and runc are not counted.
    cpuMs: async () => (metric(await scrape(), 'process_cpu_seconds_total') ?? NaN) * 1000,
    rssMiB: async () => (metric(await scrape(), 'process_resident_memory_bytes') ?? NaN) / 2 ** 20,
  };
}

export const containerdContender = (run) =>
  containerdBase(run, {
    name: 'containerd',
    label: 'containerd',
    prepare: async () => ({ conflist: run.network.net }),
  });

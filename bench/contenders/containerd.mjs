// containerd 1.6's CRI plugin on the same conflist, over its CRI socket with the same grpc-js
// client as podnetd's. Its network part is read from its own Prometheus timers, scraped before
// and after each RPC (one call in between, so a histogram's Δsum is that call's own time); the
// names as containerd 1.6.20 exposes them (docker/go-metrics: a timer gets `_seconds`, and a
// labelled timer made with a name already ending in `_seconds` gets a second one):
//   containerd_cri_sandbox_create_network_seconds   RunPodSandbox: netns + CNI ADD
//   containerd_cri_network_plugin_operations_duration_seconds_seconds{operation_type="set_up_pod"|"tear_down_pod"}
//                                                   go-cni's Setup / Remove alone
//   containerd_cri_sandbox_delete_network_seconds   StopPodSandbox: CNI DEL + netns removal
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CNI_BIN } from '../lib/config.mjs';
import { log, onCleanup } from '../lib/cleanup.mjs';
import { benchPodConfig, criClient } from '../lib/cri-client.mjs';
import { cpuMs, rssMiB } from '../lib/proc.mjs';
import { histogramDelta, metric, parseMetrics } from '../lib/prometheus.mjs';
import { loadHarness } from './containerd-harness.mjs';
import { NotAvailable } from './errors.mjs';

const CREATE_NETWORK = 'containerd_cri_sandbox_create_network_seconds';
const DELETE_NETWORK = 'containerd_cri_sandbox_delete_network_seconds';
const PLUGIN_OPS = 'containerd_cri_network_plugin_operations_duration_seconds_seconds';
const SET_UP = { operation_type: 'set_up_pod' };
const TEAR_DOWN = { operation_type: 'tear_down_pod' };
/** Scrapes per detail cycle (before Run, after Run, after Stop, after Remove). */
const SCRAPES_PER_DETAIL = 4;
const CALIBRATION_ROUNDS = 25;

/**
 * The shared body of both containerd contenders: what differs is the conflist containerd reads
 * and what must run beside it. prepare(scenario, dir) → {conflist, binDirs?, beside?(cd) →
 * Promise<{stop()}>}: beside starts, once containerd serves, what its conflist calls (it may
 * need containerd's mount namespace); it is stopped after containerd, whose own stop still
 * tears pods down through it.
 */
export function containerdBase(run, { name, label, prepare, check }) {
  let harness;
  let cd;
  let client;
  let pid;
  let stopCd = async () => undefined;
  let scenario;
  let dir;
  const live = new Set();
  const api = run.api;

  const call = (method, req) => client.call(method, req);
  const scrape = async () => parseMetrics(await cd.scrapeMetrics());

  async function removeLive() {
    for (const id of [...live]) {
      try {
        await call('stopPodSandbox', api.StopPodSandboxRequest.fromPartial({ podSandboxId: id }));
        await call('removePodSandbox', api.RemovePodSandboxRequest.fromPartial({ podSandboxId: id }));
        live.delete(id);
      } catch (err) {
        log(`cleanup: ${name} pod ${id.slice(0, 12)}: ${err.message}`);
      }
    }
  }

  const c = {
    name,
    label,
    optional: true,
    cpuOverheadMs: undefined,
    async available() {
      harness = await loadHarness(run);
      if (harness.unavailable) return harness.unavailable;
      return check ? check() : undefined;
    },
    async setup(s) {
      scenario = s;
      pid = undefined;
      dir = join(run.root, `${name}-${s.name}`);
      const confDir = join(dir, 'net.d');
      await mkdir(confDir, { recursive: true });
      await mkdir(join(dir, 'pods'), { recursive: true });
      const { conflist, binDirs, beside } = await prepare(s, dir);
      await writeFile(join(confDir, '10-bench.conflist'), JSON.stringify(conflist, null, 2));
      const mine = await harness.startContainerd({ confDir, binDirs: binDirs ?? [CNI_BIN] });
      cd = mine;
      let besideStop;
      let stopped = false;
      stopCd = async () => {
        if (stopped) return;
        stopped = true;
        if (client) await removeLive();
        client?.close();
        client = undefined;
        // What runs beside is stopped first when no pod is left; else containerd's own stop
        // still tears pods down through it.
        if (live.size === 0) await besideStop?.();
        await mine.stop();
        if (live.size > 0) await besideStop?.();
      };
      onCleanup(`${name} (${dir})`, stopCd);
      if (beside) besideStop = (await beside(mine)).stop;
      client = criClient(api, mine.socket);
      await call('version', api.VersionRequest.fromPartial({}));
      pid = await mine.pid();
      // Fail here, not in the first cycle, when the metrics are not where this file expects them
      // (the timers themselves are checked on every detail cycle: each must observe once).
      const m = await scrape();
      if (metric(m, `${CREATE_NETWORK}_count`) === undefined) throw new NotAvailable(`containerd's metrics have no ${CREATE_NETWORK}`);
    },
    async runCycle({ detail }) {
      const t = {};
      const config = benchPodConfig(api, { withHostPort: scenario.hostPort, logDirectory: join(dir, 'pods'), linux: { ...(cd.podLinux ?? {}) } });
      const m0 = detail ? await scrape() : undefined;
      let t0 = performance.now();
      const { podSandboxId: id } = await call('runPodSandbox', api.RunPodSandboxRequest.fromPartial({ config }));
      t.run = performance.now() - t0;
      live.add(id);
      const m1 = detail ? await scrape() : undefined;
      t0 = performance.now();
      await call('stopPodSandbox', api.StopPodSandboxRequest.fromPartial({ podSandboxId: id }));
      t.stop = performance.now() - t0;
      const m2 = detail ? await scrape() : undefined;
      t0 = performance.now();
      await call('removePodSandbox', api.RemovePodSandboxRequest.fromPartial({ podSandboxId: id }));
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
    async teardown() {
      // A detail cycle's scrapes cost containerd CPU too: measured here, taken out of its CPU per cycle.
      try {
        if (client && pid && c.cpuOverheadMs === undefined) {
          const c0 = await cpuMs(pid);
          for (let i = 0; i < CALIBRATION_ROUNDS * SCRAPES_PER_DETAIL; i++) await scrape();
          c.cpuOverheadMs = ((await cpuMs(pid)) - c0) / CALIBRATION_ROUNDS;
        }
      } finally {
        await stopCd();
      }
    },
    // containerd's own process; its shims and runc are not counted.
    cpuMs: () => cpuMs(pid),
    rssMiB: () => rssMiB(pid),
  };
  return c;
}

export const containerdContender = (run) =>
  containerdBase(run, {
    name: 'containerd',
    label: 'containerd',
    prepare: async () => ({ conflist: run.network.net }),
  });

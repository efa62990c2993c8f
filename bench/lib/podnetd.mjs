// A podnetd process under test, and its CRI RPCs over grpc-js.
import { spawn } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CNI_BIN, EXTRA_NODE_ARGS } from './config.mjs';
import { log, onCleanup, sleep } from './cleanup.mjs';
import { benchPodConfig, criClient } from './cri-client.mjs';
import { childPids, cpuDelta, must } from './proc.mjs';
import { histogramDelta, freeLoopbackPort, parseMetrics, scrapeHttp } from './prometheus.mjs';
import { median } from './stats.mjs';

export class Daemon {
  /**
   * run: what setupRun() returned (api, socketAlive, daemonBin); root: this daemon's own dir;
   * wrap(cmd, args) → [cmd, args]: how to start it (e.g. in containerd's namespaces with
   * nsenter); wrapForks: the wrapper forks the daemon and waits for it (nsenter into a pid
   * namespace), so the daemon is its only child: that pid is signalled and measured.
   */
  constructor(run, root, { nodeArgs = [], wrap = (cmd, args) => [cmd, args], wrapForks = false, metricsPort } = {}) {
    this.api = run.api;
    this.socketAlive = run.socketAlive;
    this.daemonBin = run.daemonBin;
    this.root = root;
    this.nodeArgs = nodeArgs;
    this.wrap = wrap;
    this.wrapForks = wrapForks;
    /** Where podnetd serves /metrics (its own RPC timers), when the bench reads them. */
    this.metricsPort = metricsPort;
    this.daemonPid = undefined;
    this.socket = join(root, 'run', 'podnet.sock');
    this.confDir = join(root, 'net.d');
    this.stateDir = join(root, 'state');
    this.configFile = join(root, 'podnetd.toml');
    this.proc = undefined;
    this.exited = undefined;
    this.client = undefined;
    this.output = '';
    /** Sandbox ids made and not yet removed. */
    this.live = new Set();
  }

  /** extraTop: more top-level keys; extraToml: whole tables appended (e.g. [cni_server]). */
  async writeConfig(conflist, extraTop = {}, extraToml = '') {
    await mkdir(this.confDir, { recursive: true });
    await writeFile(join(this.confDir, '10-bench.conflist'), JSON.stringify(conflist, null, 2));
    const toml = [
      '# written by bench/lib/podnetd.mjs',
      `socket = ${JSON.stringify(this.socket)}`,
      `state_dir = ${JSON.stringify(this.stateDir)}`,
      `netns_dir = ${JSON.stringify(join(this.root, 'netns'))}`,
      `attachments_dir = ${JSON.stringify(join(this.root, 'attachments.d'))}`,
      'log_level = "warn"',
      'max_concurrent_setups = 64',
      ...(this.metricsPort ? [`metrics_address = "127.0.0.1:${this.metricsPort}"`] : []),
      ...Object.entries(extraTop).map(([k, v]) => `${k} = ${JSON.stringify(v)}`),
      '',
      '[cni]',
      `conf_dir = ${JSON.stringify(this.confDir)}`,
      `cache_dir = ${JSON.stringify(join(this.root, 'cache'))}`,
      `bin_dirs = [${JSON.stringify(CNI_BIN)}]`,
      'plugin_timeout = "60s"',
      '',
      // The CNI door is always served: on this daemon's own socket unless extraToml names one.
      extraToml.includes('[cni_server]') ? '' : `[cni_server]\nsocket = ${JSON.stringify(join(this.root, 'run', 'cni', 'podnet-cni.sock'))}\n`,
      extraToml,
    ].join('\n');
    await writeFile(this.configFile, toml);
  }

  get pid() {
    return this.daemonPid ?? this.proc?.pid;
  }

  get running() {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Spawns podnetd and waits until Version answers; returns the ms that took. */
  async start() {
    const t0 = performance.now();
    // Own process group: a Ctrl-C on the bench must not stop the daemon before we have cleaned up through it.
    const [cmd, args] = this.wrap(process.execPath, [...this.nodeArgs, this.daemonBin, '--config', this.configFile]);
    const proc = spawn(cmd, args, { cwd: this.root, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve(code ?? (sig ? 128 : 1))));
    const keep = (b) => {
      this.output += b.toString('utf8');
      if (this.output.length > 200_000) this.output = this.output.slice(-100_000);
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    const deadline = Date.now() + 30_000;
    this.daemonPid = undefined;
    while (this.wrapForks && this.daemonPid === undefined) {
      [this.daemonPid] = await childPids(proc.pid);
      if (!this.running) throw new Error(`${cmd} exited (${proc.exitCode ?? proc.signalCode}) before starting podnetd: ${this.output.trim().slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`${cmd} started no podnetd within 30 s`);
      if (this.daemonPid === undefined) await sleep(5);
    }
    while (!(await this.socketAlive(this.socket))) {
      if (!this.running) throw new Error(`podnetd exited (${proc.exitCode ?? proc.signalCode}) before serving: ${this.output.trim().slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`podnetd did not serve within 30 s: ${this.output.trim().slice(-2000)}`);
      await sleep(5);
    }
    this.client = criClient(this.api, this.socket);
    for (;;) {
      try {
        await this.call('version', this.api.VersionRequest.fromPartial({}), 5_000);
        break;
      } catch (err) {
        if (!this.running || Date.now() > deadline) throw err;
        await sleep(5);
      }
    }
    return performance.now() - t0;
  }

  /** podnetd's /metrics, parsed (parseMetrics). */
  async scrape() {
    if (!this.metricsPort) throw new Error('podnetd was started without a metrics address');
    return parseMetrics(await scrapeHttp(this.metricsPort, '/metrics', 'podnetd metrics'));
  }

  call(method, req, timeoutMs) {
    if (!this.client) return Promise.reject(new Error(`${method}: podnetd not running`));
    return this.client.call(method, req, timeoutMs);
  }

  /** SIGTERM and wait (SIGKILL after timeoutMs); returns the ms until it exited. */
  async stop(timeoutMs = 20_000) {
    this.client?.close();
    this.client = undefined;
    if (!this.running) return 0;
    const t0 = performance.now();
    const pid = this.pid;
    process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => {
      log(`podnetd ${pid} did not exit ${timeoutMs} ms after SIGTERM: SIGKILL`);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, timeoutMs);
    await this.exited;
    clearTimeout(timer);
    return performance.now() - t0;
  }

  // One sandbox's RPCs ----------------------------------------------------------------------------

  podConfig({ withHostPort = true } = {}) {
    return benchPodConfig(this.api, { withHostPort });
  }

  async runPod(opts) {
    const res = await this.call('runPodSandbox', this.api.RunPodSandboxRequest.fromPartial({ config: this.podConfig(opts) }));
    this.live.add(res.podSandboxId);
    return res.podSandboxId;
  }

  async statusInfo(id) {
    const res = await this.call('podSandboxStatus', this.api.PodSandboxStatusRequest.fromPartial({ podSandboxId: id, verbose: true }));
    return { res, info: JSON.parse(res.info?.info ?? '{}') };
  }

  async stopPod(id) {
    await this.call('stopPodSandbox', this.api.StopPodSandboxRequest.fromPartial({ podSandboxId: id }));
  }

  async removePod(id) {
    await this.call('removePodSandbox', this.api.RemovePodSandboxRequest.fromPartial({ podSandboxId: id }));
    this.live.delete(id);
  }

  async list() {
    return (await this.call('listPodSandbox', this.api.ListPodSandboxRequest.fromPartial({}))).items;
  }

  /** Stop+remove everything the daemon has (restarting it on the same dirs if it died), then SIGTERM. */
  async dispose() {
    const recordsOnDisk = async () => (await readdir(join(this.stateDir, 'sandboxes')).catch(() => [])).some((n) => n.endsWith('.json'));
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!this.running) {
        if (this.live.size === 0 && !(await recordsOnDisk())) break;
        log('cleanup: podnetd is not running but sandboxes remain: starting it again on the same dirs to remove them');
        try {
          await this.start();
        } catch (err) {
          log(`cleanup: restart failed: ${err.message}`);
          break;
        }
      }
      try {
        const ids = new Set(this.live);
        for (const p of await this.list()) ids.add(p.id);
        if (ids.size > 0) log(`cleanup: stopping and removing ${ids.size} sandbox(es)`);
        const arr = [...ids];
        let next = 0;
        let failed = 0;
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            while (next < arr.length) {
              const id = arr[next++];
              try {
                await this.stopPod(id);
                await this.removePod(id);
              } catch (err) {
                failed++;
                if (failed <= 5) log(`cleanup: ${id.slice(0, 12)}: ${err.message}`);
              }
            }
          }),
        );
        if (failed === 0) break;
        throw new Error(`${failed} sandbox(es) not removed`);
      } catch (err) {
        log(`cleanup: ${err.message}`);
        // The daemon may have died under us: let its exit be seen, then try once more.
        await Promise.race([this.exited, sleep(3000)]);
        if (this.running) break;
      }
    }
    await this.stop();
  }
}

/** A podnetd on the bench network in its own dir under the run's root, disposed at cleanup. */
export async function startPodnet(run, dirName, { nodeArgs = [], extraTop = {}, extraToml = '', conflist = run.network.net, wrap, wrapForks, metrics = false } = {}) {
  const metricsPort = metrics ? await freeLoopbackPort() : undefined;
  const d = new Daemon(run, join(run.root, dirName), { nodeArgs: [...EXTRA_NODE_ARGS, ...nodeArgs], wrap, wrapForks, metricsPort });
  await d.writeConfig(conflist, extraTop, extraToml);
  onCleanup(`podnetd (${d.configFile})`, () => d.dispose());
  const ms = await d.start();
  log(`podnetd pid ${d.pid} (${dirName}) serving after ${ms.toFixed(0)} ms`);
  return d;
}

/** podnetd's own timer of each RPC (podnet_rpc_duration_seconds, the CRI door). */
const RPC_TIMER = 'podnet_rpc_duration_seconds';
const rpcTimer = (method) => ({ door: 'cri', method });

/**
 * Run → Status(verbose) → Stop → [Status(verbose), for DEL plugin timings] → Remove; ms of each
 * as the client saw it (run, stop, remove), with the daemon's own per-plugin timings. detail (a
 * daemon with metrics): the daemon's own timer of each RPC too (runNetwork, stopNetwork,
 * removeNetwork: the handler's time, from request decoded to response handed to grpc-js), read
 * from one scrape before the cycle and one after, as containerd's timers are read. cpuMs
 * (optional): the daemon's CPU is read between the scrapes (cpuDelta into cpu, cpuDaemon...), so
 * a scrape's own cost (~2 ms) is never counted.
 */
export async function podnetCycle(d, { delTimings = false, withHostPort = true, detail = delTimings, cpuMs } = {}) {
  const t = {};
  const m0 = detail && d.metricsPort ? await d.scrape() : undefined;
  const cpu0 = cpuMs ? await cpuMs() : undefined;
  let t0 = performance.now();
  const id = await d.runPod({ withHostPort });
  t.run = performance.now() - t0;
  t0 = performance.now();
  const { res, info } = await d.statusInfo(id);
  t.status = performance.now() - t0;
  if (!res.status?.network?.ip) throw new Error(`sandbox ${id} has no IP: ${JSON.stringify(info).slice(0, 500)}`);
  const timings = (verb) => (info.pluginTimings ?? []).filter((x) => x.verb === verb);
  for (const x of timings('ADD')) t[`${x.plugin === 'loopback' ? 'lo' : x.plugin}Add`] = x.ms;
  t0 = performance.now();
  await d.stopPod(id);
  t.stop = performance.now() - t0;
  if (delTimings) {
    const after = await d.statusInfo(id);
    for (const x of (after.info.pluginTimings ?? []).filter((y) => y.verb === 'DEL')) t[`${x.plugin === 'loopback' ? 'lo' : x.plugin}Del`] = x.ms;
  }
  t0 = performance.now();
  await d.removePod(id);
  t.remove = performance.now() - t0;
  t.cycle = t.run + t.status + t.stop + t.remove;
  if (cpu0 !== undefined) Object.assign(t, cpuDelta(cpu0, await cpuMs()));
  if (m0) {
    const m1 = await d.scrape();
    for (const [step, method] of [['runNetwork', 'RunPodSandbox'], ['stopNetwork', 'StopPodSandbox'], ['removeNetwork', 'RemovePodSandbox']]) {
      const h = histogramDelta(m0, m1, RPC_TIMER, rpcTimer(method));
      if (h.count !== 1) throw new Error(`podnetd: ${RPC_TIMER}{method="${method}"} observed ${h.count} times in one cycle (expected 1)`);
      t[step] = h.ms;
    }
  }
  // The critical path of Run: loopback ADD runs beside the cluster network's chain. podnetd's
  // own timer when it was read, else the client's time.
  const run = t.runNetwork ?? t.run;
  const stop = t.stopNetwork ?? t.stop;
  if (t.bridgeAdd !== undefined && t.portmapAdd !== undefined) t.addOutsidePlugins = run - t.bridgeAdd - t.portmapAdd;
  if (delTimings && t.portmapDel !== undefined) {
    // Loopback's DEL runs beside the chain's too.
    t.delOutsidePlugins = stop - t.portmapDel - t.bridgeDel;
    // The daemon's own share of a cycle: everything but the plugins on the critical path.
    t.cycleOutsidePlugins = t.cycle - t.bridgeAdd - t.portmapAdd - t.portmapDel - t.bridgeDel;
  }
  return t;
}

/** Wall time of `node bin/podnetd --version`: process start + loading every module, no daemon work. */
export async function versionStartMs(run, nodeArgs = []) {
  const xs = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await must(process.execPath, [...nodeArgs, run.daemonBin, '--version'], { detached: false });
    xs.push(performance.now() - t0);
  }
  return median(xs);
}

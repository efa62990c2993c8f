import type { Logger } from 'pino';
import { CNIConfig, type PluginExecEvent } from '../cni/cni.js';
import { RawExec, type PluginExec } from '../cni/exec.js';
import { NetnsManager } from '../netns/netns.js';
import { HELPER_BINARY, helperAvailable, SpawnHelper } from '../spawner/helper.js';
import { InlineSpawner } from '../spawner/spawner.js';
import type { DaemonConfig } from './config.js';
import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { NADStore } from '../engine/attachments.js';
import { Engine } from '../engine/engine.js';
import type { GCReport } from '../engine/gc.js';
import { Metrics } from './metrics.js';
import { NetworkManager } from '../engine/network-manager.js';
import { RuntimeInfoService } from './runtime-service.js';
import { SandboxService, type Clock } from './sandbox-service.js';
import { CRIServer, type RPCObserver } from './server.js';
import { ContainerService } from './container-service.js';
import { SandboxEvents } from './events.js';
import { ImageInfoService } from './image-service.js';
import { SandboxStatsService } from './stats.js';
import { CommandNetDevReader } from '../netns/netdev.js';
import { PodNetworksService } from './pod-networks.js';
import { NetnsLedger, SandboxStore } from '../engine/store.js';
import { CNIDoorServer } from '../cnidoor/server.js';
import { EngineBackend } from '../cnidoor/engine-backend.js';

export interface DaemonDeps {
  exec?: PluginExec;
  clock?: Clock;
  /** Extra observers (metrics). */
  onPluginExec?: (ev: PluginExecEvent) => void;
  onRPC?: RPCObserver;
}

export interface Daemon {
  cfg: DaemonConfig;
  engine: Engine;
  sandboxes: SandboxService;
  networks: NetworkManager;
  runtime: RuntimeInfoService;
  cni: CNIConfig;
  metrics: Metrics;
  /** The CNI door (Multus' thick-plugin protocol) on cni_server.socket. */
  door: CNIDoorServer;
  /** CNI GC now, with no ADD/DEL in flight. */
  gc(): Promise<GCReport>;
  /** Stops accepting, finishes in-flight RPCs, stops watchers. */
  stop(): Promise<void>;
}

/** The helper that forks plugins for us, or undefined to fork them in this process. */
async function startSpawnHelper(cfg: DaemonConfig, log: Logger): Promise<SpawnHelper | undefined> {
  if (cfg.spawner === 'inline') return undefined;
  if (!(await helperAvailable())) {
    log.warn({ binary: HELPER_BINARY }, 'spawn helper not built (make build); forking plugins from podnetd itself');
    return undefined;
  }
  return new SpawnHelper(HELPER_BINARY, (detail) => log.error({ detail }, 'spawn helper died; calls in flight failed, the next call starts a new one'));
}

/** Wires the parts together, recovers the store, loads networks, then serves. */
export async function startDaemon(cfg: DaemonConfig, log: Logger, deps: DaemonDeps = {}): Promise<Daemon> {
  let engine: Engine | undefined;
  const helper = await startSpawnHelper(cfg, log);
  const metrics = new Metrics(() => engine?.list() ?? []);
  const cni = new CNIConfig({
    path: cfg.cni.binDirs,
    cacheDir: cfg.cni.cacheDir,
    exec: deps.exec ?? new RawExec(helper),
    // Invalidated by NetworkManager's poll of the plugin dirs.
    cachePluginPaths: true,
    observer: (ev) => {
      log.debug({ network: ev.network, plugin: ev.plugin, verb: ev.verb, sandbox: ev.containerID, ifName: ev.ifName, durationMs: ev.durationMs, err: ev.error?.message }, 'cni exec');
      engine?.onPluginExec(ev);
      metrics.observePlugin(ev, engine?.get(ev.containerID)?.door);
      deps.onPluginExec?.(ev);
    },
    // Informational, as libcni treats it (it copies it to its own stderr); bounded, a plugin may be chatty.
    onStderr: (ev) =>
      log.info({ network: ev.network, plugin: ev.plugin, verb: ev.verb, sandbox: ev.containerID, ifName: ev.ifName, stderr: ev.stderr.slice(0, 4096) }, 'plugin wrote to stderr'),
  });
  const networks = new NetworkManager(cfg, cni, log.child({ component: 'networks' }), undefined, (source, loaded, rejected) => metrics.setConfigStatus(source, loaded, rejected));
  const netns = new NetnsManager(cfg.netnsDir, helper);
  const events = new SandboxEvents(deps.clock);
  engine = new Engine({
    cfg,
    store: new SandboxStore(cfg.stateDir),
    ledger: new NetnsLedger(cfg.stateDir),
    netns,
    networks,
    nads: new NADStore(cfg.attachmentsDir),
    spawner: helper ?? new InlineSpawner(),
    log: log.child({ component: 'engine' }),
    observer: {
      netnsOp: (op, door, ms) => metrics.observeNetns(op, door, ms),
      sandboxStep: (step, rec) => events.onSandboxStep(step, rec),
      hotplug: (op, door, outcome) => metrics.observeHotplug(op, door, outcome),
    },
  });
  const eng = engine;
  const sandboxes = new SandboxService({ cfg, engine: eng, log: log.child({ component: 'sandboxes' }), ...(deps.clock ? { clock: deps.clock } : {}) });
  const runtime = new RuntimeInfoService(cfg, networks, log.child({ component: 'runtime' }));
  await networks.start();
  // The CNI door serves from the start: its calls wait for recovery in the engine, /readyz says
  // 500 until it finished (the shim waits for that on ADD), and a DEL retried by the runtime
  // while podnetd restarts is not refused.
  let recovered = false;
  const recovery = eng.recover();
  const doorLog = log.child({ component: 'cni-door', door: 'cni' });
  const door = new CNIDoorServer({
    backend: new EngineBackend({ engine: eng, recovered: () => recovery.then(() => undefined, () => undefined), ready: () => recovered, netnsExists: (p) => netns.exists(p), log: doorLog }),
    log: doorLog,
    observe: (_route, command, outcome, ms) => metrics.observeRequest('cni', command, ms, outcome),
  });
  try {
    await door.listen(cfg.cniServer.socket);
  } catch (err) {
    await recovery.catch(() => undefined);
    await helper?.close();
    throw new Error(`cannot serve the CNI door on ${cfg.cniServer.socket}: ${(err as Error).message}`);
  }
  let report;
  try {
    report = await recovery;
  } catch (err) {
    await door.close();
    await helper?.close();
    throw err;
  }
  recovered = true;
  log.info(report, 'sandbox store recovered');
  log.info({ socket: cfg.cniServer.socket }, 'serving the CNI door');
  const onRPC: RPCObserver = (rpc, ms, code) => {
    metrics.observeRPC(rpc, ms, code);
    deps.onRPC?.(rpc, ms, code);
  };
  const stats = new SandboxStatsService({
    sandboxes,
    // The helper reads inside the namespace with a setns() of its own; inline, nsenter does.
    reader: helper ?? new CommandNetDevReader(),
    log: log.child({ component: 'stats' }),
    ...(deps.clock ? { clock: deps.clock } : {}),
  });
  const images = new ImageInfoService(cfg.stateDir, deps.clock);
  const podNetworks = new PodNetworksService(eng);
  const server = new CRIServer({ sandboxes, runtime, images, containers: new ContainerService(), stats, events, podNetworks, observe: onRPC }, log.child({ component: 'grpc' }));
  try {
    await server.listen(cfg.socket);
  } catch (err) {
    await door.close();
    await helper?.close();
    throw err;
  }
  log.info({ socket: cfg.socket }, 'podnetd serving');
  const metricsServer = cfg.metricsAddress ? await metrics.serve(cfg.metricsAddress) : undefined;
  if (metricsServer) log.info({ address: cfg.metricsAddress }, 'serving metrics on /metrics');
  const gcLog = log.child({ component: 'gc' });
  let gcRunning: Promise<GCReport> | undefined;
  const gc = (): Promise<GCReport> => {
    gcRunning ??= eng
      .gc()
      .then((r) => {
        metrics.gcRemoved.inc({ kind: 'cache_entry' }, r.staleAttachments);
        return r;
      })
      .finally(() => (gcRunning = undefined));
    return gcRunning;
  };
  const runGC = (): void => void gc().catch((err: Error) => gcLog.error({ err: err.message }, 'cni garbage collection failed'));
  // On start (after serving begins: GC must not delay readiness), then every gc_interval.
  setImmediate(runGC);
  const gcTimer = cfg.gcIntervalMs > 0 ? setInterval(runGC, cfg.gcIntervalMs) : undefined;
  gcTimer?.unref();
  // `podnet gc` signals the daemon whose pid is in the state dir.
  const pidFile = join(cfg.stateDir, 'podnetd.pid');
  await writeFile(pidFile, `${process.pid}\n`);
  process.on('SIGUSR1', runGC);
  return {
    cfg,
    engine: eng,
    sandboxes,
    networks,
    runtime,
    cni,
    metrics,
    door,
    gc,
    async stop() {
      door.beginShutdown();
      if (gcTimer) clearInterval(gcTimer);
      process.off('SIGUSR1', runGC);
      // Event streams never end on their own; the server waits for every open call.
      events.close();
      // The door serves (its probes saying not ready) until the CRI calls have drained too.
      await Promise.all([server.shutdown(), door.drain()]);
      await door.close();
      networks.stop();
      metricsServer?.close();
      await gcRunning?.catch(() => undefined);
      await rm(pidFile, { force: true });
      await helper?.close();
    },
  };
}

import { isAbsolute, normalize } from 'node:path';
import { isIPv4 } from 'node:net';
import type { Logger } from 'pino';
import type { PluginExecEvent } from '../cni/cni.js';
import { confListFromBytes } from '../cni/config.js';
import { findInPath } from '../cni/exec.js';
import { delAttachment, LOOPBACK_IFNAME, summarize, type Attachment, type Networks, type SetupResult } from '../cni/networks.js';
import { killPluginProcesses } from '../cni/orphans.js';
import { toCurrent, type Result } from '../cni/result.js';
import { validateCniArg, validateContainerID, validateIfName, type RuntimeConf } from '../cni/runtime-conf.js';
import { versionAtLeast } from '../cni/version.js';
import { nsfsMounts, type NetnsManager } from '../netns/netns.js';
import type { Spawner } from '../spawner/spawner.js';
import {
  DEFAULT_NETWORK_ANNOTATION,
  NETWORKS_ANNOTATION,
  parseDefaultNetwork,
  parseNetworksAnnotation,
  resolveAttachments,
  resolveDefaultNetwork,
  type NADStore,
} from './attachments.js';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, toEngineError } from './errors.js';
import { collectGarbage, type GCReport } from './gc.js';
import { Hotplug } from './hotplug.js';
import { KeyedMutex, Semaphore, SharedExclusiveLock } from './locks.js';
import type { NetworkManager, NetworkStatus } from './network-manager.js';
import { liveAttachments, selectPodIPs } from './network-status.js';
import { neverAdded, recordAddProgress } from './rollback.js';
import { NetnsLedger, SandboxStore, StoreError, type AttachmentRecord, type PluginTiming, type SandboxRecord } from './store.js';
import type { CachedAttachment } from '../cni/cache.js';
import { isObject } from '../cni/json.js';
import { handled, settleAll } from '../util/settle.js';
import { withTimeout } from '../util/timeout.js';
import { DEFAULT_IFNAME } from './types.js';
import type {
  AttachOutcome,
  AttachSelection,
  Door,
  HotplugEngine,
  NetworkStatusEntry,
  EngineConfig,
  EngineObserver,
  SandboxStep,
  GCRequest,
  NetworkSelector,
  PodNetworkEngine,
  RecoveryReport,
  SetupOutcome,
  SetupPlan,
  SetupRequest,
  TeardownOptions,
} from './types.js';

export interface EngineDeps {
  cfg: EngineConfig;
  store: SandboxStore;
  ledger: NetnsLedger;
  netns: NetnsManager;
  networks: NetworkManager;
  nads: NADStore;
  /** Starts the engine's own processes (the default-route move), as plugins are started. */
  spawner: Spawner;
  log: Logger;
  observer?: EngineObserver;
}

/** An attachment's cache entry, read before its DEL. */
type CachedEntries = Map<AttachmentRecord, CachedAttachment>;

const POD_ANNOTATIONS_CAPABILITY = 'io.kubernetes.cri.pod-annotations';
/** CNI_ARGS the engine sets itself from the pod; a door's extra args never repeat them. */
const ENGINE_CNI_ARGS = new Set(['IgnoreUnknown', 'K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID']);
const MAX_POD_FIELD = 253;
const MAX_PATH = 4096;

/** An attachment's cache entry as the record has it; undefined when the record has no result for it (nothing to DEL from but the config). */
function recordedEntry(rec: SandboxRecord, a: AttachmentRecord, rt: RuntimeConf): CachedAttachment | undefined {
  const result = rec.results.find((r) => r.ifName === a.ifName && r.network === a.network)?.result;
  if (!isObject(result)) return undefined;
  return { containerID: rec.id, ifName: a.ifName, networkName: a.network, config: Buffer.from(a.config, 'base64'), cniArgs: (rt.args ?? []).map(([k, v]): [string, string] => [k, v]), ...(rt.capabilityArgs ? { capabilityArgs: rt.capabilityArgs } : {}), result };
}

/** The network config list an attachment was recorded with (never the current file). */
function attachmentList(rec: SandboxRecord, a: AttachmentRecord) {
  return confListFromBytes(Buffer.from(a.config, 'base64'), `sandbox:${rec.id}/${a.ifName}`);
}

function toAttachmentRecord(a: Attachment, ifName = a.ifName): AttachmentRecord {
  return { network: a.list.name, ifName, config: a.list.bytes.toString('base64') };
}

/** The request's own checks, for what a door may not have checked in its terms already. */
function checkSetupRequest(req: SetupRequest): void {
  try {
    validateContainerID(req.id);
    if (req.clusterIfName !== undefined) validateIfName(req.clusterIfName);
    for (const [field, v] of [['namespace', req.pod.namespace], ['name', req.pod.name], ['uid', req.pod.uid]] as const) {
      if (v === '') throw invalidArgument(`pod ${field} is required`);
      if (v.length > MAX_POD_FIELD) throw invalidArgument(`pod ${field} is longer than ${MAX_POD_FIELD} characters`);
      validateCniArg(`K8S_POD_${field.toUpperCase()}`, v);
    }
    for (const [k, v] of req.cniArgs ?? []) validateCniArg(k, v);
  } catch (err) {
    throw toEngineError(err);
  }
  if (req.pod.attempt !== undefined && (!Number.isInteger(req.pod.attempt) || req.pod.attempt < 0)) throw invalidArgument('pod attempt must be a non-negative integer');
  if (req.netns.owner === 'runtime') {
    const p = req.netns.path;
    if (p === '' || p.length > MAX_PATH || p.includes('\0') || !isAbsolute(p) || normalize(p) !== p) {
      throw invalidArgument(`network namespace path "${p.slice(0, 200)}" must be an absolute, normalized path`);
    }
  }
}

/** Whether a pod was set up on the networks a selector names. */
function onNetworks(rec: Readonly<SandboxRecord>, sel: NetworkSelector): boolean {
  return 'network' in sel ? rec.network === sel.network : rec.network === undefined && rec.runtimeHandler === sel.runtimeHandler;
}

/** `nsenter`'s absolute path: the spawn helper does no PATH lookup. */
async function nsenterPath(): Promise<string> {
  return findInPath('nsenter', (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':'));
}

/**
 * The pod-network engine: records with their phases, namespaces, attachments, ADD/DEL with
 * rollback, per-sandbox and GC locks, recovery and GC. Both doors call it; it speaks pod-network
 * terms and throws EngineErrors only.
 */
export class Engine implements PodNetworkEngine, HotplugEngine {
  private readonly cfg: EngineConfig;
  private readonly store: SandboxStore;
  private readonly ledger: NetnsLedger;
  private readonly netns: NetnsManager;
  private readonly networks: NetworkManager;
  private readonly nads: NADStore;
  private readonly spawner: Spawner;
  private readonly log: Logger;
  private readonly observer: EngineObserver;
  private readonly locks = new KeyedMutex();
  private readonly setupSlots: Semaphore;
  private readonly gcLock = new SharedExclusiveLock();
  /** Plugin timings of operations in flight, by sandbox id. */
  private readonly timings = new Map<string, PluginTiming[]>();
  /** Set while recover() runs: a door's request that arrives meanwhile waits for it. */
  private recovering: Promise<unknown> | undefined;
  private readonly hotplug: Hotplug;

  constructor(deps: EngineDeps) {
    this.cfg = deps.cfg;
    this.store = deps.store;
    this.ledger = deps.ledger;
    this.netns = deps.netns;
    this.networks = deps.networks;
    this.nads = deps.nads;
    this.spawner = deps.spawner;
    this.log = deps.log;
    this.observer = deps.observer ?? {};
    this.setupSlots = new Semaphore(deps.cfg.maxConcurrentSetups);
    this.hotplug = new Hotplug({
      cfg: this.cfg,
      store: this.store,
      nads: this.nads,
      networks: this.networks,
      log: this.log,
      observer: this.observer,
      locked: (id, fn) => this.locks.run(id, () => this.networkWork(fn)),
      recovered: () => this.recovered(),
      list: attachmentList,
      runtimeConf: (rec, a, netNS) => this.runtimeConf(rec, a, netNS),
      moveDefaultRoute: (rec, a, summary, signal) => this.moveDefaultRoute(rec, a, summary, signal),
    });
  }

  // ---- hot-plug (hotplug.ts) ------------------------------------------------------------------

  attach(id: string, selection: AttachSelection, signal: AbortSignal): Promise<AttachOutcome> {
    return this.hotplug.attach(id, selection, signal);
  }

  detach(id: string, ifName: string, signal: AbortSignal): Promise<void> {
    return this.hotplug.detach(id, ifName, signal);
  }

  listNetworks(id: string): NetworkStatusEntry[] {
    return this.hotplug.listNetworks(id);
  }

  /** Wired to the CNI library's observer: keeps per-plugin timings for the sandbox's record. */
  onPluginExec(ev: PluginExecEvent): void {
    const list = this.timings.get(ev.containerID);
    if (!list) return;
    list.push({ network: ev.network, ifName: ev.ifName, plugin: ev.plugin, verb: ev.verb, ms: Math.round(ev.durationMs * 1000) / 1000, ...(ev.error ? { error: ev.error.message } : {}) });
  }

  // ---- set up ---------------------------------------------------------------------------------

  async setUp(req: SetupRequest, signal: AbortSignal): Promise<SetupOutcome> {
    try {
      await this.recovered();
      // 1. Everything is checked and resolved before anything exists.
      const { attachments, clusterIfName } = await this.resolveSetup(req);
      const run = (): Promise<SetupOutcome> =>
        this.locks.run(req.id, async () => {
          // 2. One record per id.
          if (this.store.get(req.id)) throw alreadyExists(`sandbox ${req.id} already exists`);
          const rec = this.newRecord(req, attachments, clusterIfName);
          if (req.hostNetwork) {
            // 3a. The node's namespace: no netns, no CNI.
            rec.phase = 'ready';
            await this.store.put(rec);
            this.step('created', rec);
            this.step('ready', rec);
            return { record: rec, result: undefined };
          }
          await this.networkWork(() => this.createNetwork(rec, signal));
          return { record: rec, result: rec.results.find((r) => r.ifName === rec.clusterIfName)?.result as Result | undefined };
        });
      const { pod } = req;
      if (pod.attempt === undefined) return await run();
      // 2'. One live sandbox per pod attempt.
      return await this.locks.run(`pod:${pod.namespace}/${pod.name}/${pod.uid}/${pod.attempt}`, async () => {
        const existing = this.store.findLive(pod, req.door);
        if (existing) {
          throw alreadyExists(`sandbox for pod ${pod.namespace}/${pod.name} (uid ${pod.uid}, attempt ${pod.attempt}) already exists: ${existing.id}`);
        }
        return run();
      });
    } catch (err) {
      throw toEngineError(err);
    }
  }

  /**
   * What setUp would do, resolved by setUp's own code and with no side effect (no record, no
   * namespace, no plugin): the record it would write and what each attachment's plugins get.
   * `podnet explain` shows it; the namespace path is the one `netns.newPath()` hands out.
   */
  async plan(req: SetupRequest): Promise<SetupPlan> {
    try {
      const { attachments, clusterIfName } = await this.resolveSetup(req);
      const record = this.newRecord(req, attachments, clusterIfName);
      return {
        record,
        attachments: record.attachments.map((a) => ({ attachment: a, list: attachmentList(record, a), runtimeConf: this.runtimeConf(record, a, record.netnsPath) })),
      };
    } catch (err) {
      throw toEngineError(err);
    }
  }

  /** Step 1 of a setup: the request checked and every network resolved, before anything exists. */
  private async resolveSetup(req: SetupRequest): Promise<{ attachments: AttachmentRecord[]; clusterIfName: string }> {
    checkSetupRequest(req);
    const clusterIfName = req.clusterIfName ?? DEFAULT_IFNAME;
    const attachments = req.hostNetwork ? [] : await this.resolvePodNetworks(req, clusterIfName);
    if (!req.hostNetwork && req.netns.owner === 'runtime' && !(await this.netns.exists(req.netns.path))) {
      throw invalidArgument(`network namespace ${req.netns.path} does not exist (or is not a network namespace)`);
    }
    return { attachments, clusterIfName };
  }

  /** The networks the selector names, ready for a pod. */
  private selectNetworks(req: SetupRequest): Networks {
    if ('network' in req.networks) {
      const nets = this.networks.forNetwork(req.networks.network);
      if (!nets) throw failedPrecondition(`network "${req.networks.network}" is not loaded from any conf dir`);
      return nets;
    }
    const handler = req.networks.runtimeHandler;
    const networks = this.networks.forHandler(handler);
    if (!networks.ready()) {
      throw failedPrecondition(`network for runtime handler "${handler || this.cfg.defaultRuntimeHandler}" is not ready: ${this.networks.status(handler || undefined).message}`);
    }
    return networks;
  }

  /**
   * Every network the pod joins, resolved before anything exists: loopback (if asked), the cluster
   * network (or the default-network annotation's), then the networks annotation's attachments.
   */
  private async resolvePodNetworks(req: SetupRequest, clusterIfName: string): Promise<AttachmentRecord[]> {
    const networks = this.selectNetworks(req);
    const confNets = networks.attachments.filter((a) => a.ifName !== LOOPBACK_IFNAME);
    const base = [
      ...(req.loopback ? networks.attachments.filter((a) => a.ifName === LOOPBACK_IFNAME).map((a) => toAttachmentRecord(a)) : []),
      // The first conf-dir network is the cluster network, on the interface the door names.
      ...confNets.map((a, i) => toAttachmentRecord(a, i === 0 ? clusterIfName : a.ifName)),
    ];
    const annotations = req.annotations ?? {};
    const wanted = annotations[NETWORKS_ANNOTATION];
    const defaultNet = annotations[DEFAULT_NETWORK_ANNOTATION];
    if (wanted === undefined && defaultNet === undefined) return base;
    const selections = wanted === undefined ? [] : parseNetworksAnnotation(wanted, req.pod.namespace);
    const defaultSel = defaultNet === undefined ? undefined : parseDefaultNetwork(defaultNet, req.pod.namespace);
    const { nads } = await this.nads.load();
    const find = (name: string) => this.networks.findNetwork(name);
    if (defaultSel) {
      const list = resolveDefaultNetwork(defaultSel, nads, find);
      const i = base.findIndex((a) => a.ifName === clusterIfName);
      const replaced: AttachmentRecord = { network: list.name, ifName: clusterIfName, config: list.bytes.toString('base64'), ref: `${defaultSel.namespace}/${defaultSel.name}` };
      if (i >= 0) base[i] = replaced;
      else base.push(replaced);
    }
    return [...base, ...resolveAttachments(selections, nads, find, base.map((a) => a.ifName))];
  }

  private newRecord(req: SetupRequest, attachments: AttachmentRecord[], clusterIfName: string): SandboxRecord {
    const { pod } = req;
    const labels: Record<string, string> = {
      K8S_POD_NAMESPACE: pod.namespace,
      K8S_POD_NAME: pod.name,
      K8S_POD_INFRA_CONTAINER_ID: req.id,
      K8S_POD_UID: pod.uid,
    };
    const capabilityArgs: Record<string, unknown> = {};
    if (req.portMappings && req.portMappings.length > 0) capabilityArgs['portMappings'] = req.portMappings;
    if (req.bandwidth) capabilityArgs['bandwidth'] = req.bandwidth;
    if (req.dns) capabilityArgs['dns'] = req.dns;
    if (req.cgroupPath) capabilityArgs['cgroupPath'] = req.cgroupPath;
    capabilityArgs[POD_ANNOTATIONS_CAPABILITY] = req.annotations ?? {};
    const extra = (req.cniArgs ?? []).filter(([k]) => !ENGINE_CNI_ARGS.has(k));
    const netnsPath = req.hostNetwork ? '' : req.netns.owner === 'runtime' ? req.netns.path : this.netns.newPath();
    return {
      id: req.id,
      door: req.door,
      phase: 'creating',
      metadata: { name: pod.name, namespace: pod.namespace, uid: pod.uid, ...(pod.attempt !== undefined ? { attempt: pod.attempt } : {}) },
      runtimeHandler: 'runtimeHandler' in req.networks ? req.networks.runtimeHandler : '',
      ...('network' in req.networks ? { network: req.networks.network } : {}),
      hostNetwork: req.hostNetwork ?? false,
      netnsPath,
      netnsOwner: req.netns.owner,
      clusterIfName,
      attachments,
      cniArgs: [['IgnoreUnknown', '1'], ...Object.entries(labels), ...extra],
      capabilityArgs,
      ips: [],
      results: [],
      timings: [],
      ...(req.cri ? { cri: req.cri } : {}),
      version: 2,
    };
  }

  /**
   * The network half of a setup. Order matters for crash safety: the record (phase `creating`,
   * netns path, attachment configs) is on disk before the namespace exists, and the namespace
   * exists before any plugin runs, so a restart always knows what to undo.
   */
  private async createNetwork(rec: SandboxRecord, signal: AbortSignal): Promise<void> {
    const log = this.log.child({ sandbox: rec.id, pod: `${rec.metadata.namespace}/${rec.metadata.name}`, door: rec.door });
    const owned = rec.netnsOwner === 'podnet';
    try {
      await this.store.put(rec);
    } catch (err) {
      throw toEngineError(err, 'failed to record sandbox');
    }
    // The ledger entry only matters once no record names the namespace, which the order of every
    // teardown rules out while the record lives: it is written beside the setup (after the record,
    // whose journal commit it would otherwise share and slow), and awaited with the ready record.
    const pending: Array<Promise<void>> = [handled(owned ? this.ledger.add(rec.netnsPath) : Promise.resolve())];
    this.step('created', rec);
    this.timings.set(rec.id, rec.timings);
    try {
      if (owned) await this.timedNetns('create', rec.door, () => this.netns.create(rec.netnsPath));
      const result = await this.setupAttachments(rec, signal, pending);
      rec.ips = selectPodIPs(result, this.cfg.cni.ipPref, rec.clusterIfName);
      rec.results = result.results;
      rec.phase = 'ready';
      // The ready record, the last cache entries and the ledger entry are independent files:
      // written together, all durable before the client hears of the sandbox.
      await settleAll([this.store.put(rec), ...pending]);
      this.step('ready', rec);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'pod network setup failed; cleaning up');
      // A write still in flight must land before the cleanup removes what it wrote.
      await Promise.allSettled(pending);
      recordAddProgress(rec);
      await this.cleanupFailedCreate(rec, log);
      throw toEngineError(err, `failed to set up network for sandbox ${rec.id}`);
    } finally {
      this.timings.delete(rec.id);
    }
  }

  private step(step: SandboxStep, rec: Readonly<SandboxRecord>): void {
    try {
      this.observer.sandboxStep?.(step, rec);
    } catch (err) {
      // An observer's failure is its own; the sandbox's life goes on.
      this.log.error({ sandbox: rec.id, step, err: (err as Error).message }, 'sandbox step observer failed');
    }
  }

  private async timedNetns<T>(op: 'create' | 'remove', door: Door, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await fn();
    } finally {
      this.observer.netnsOp?.(op, door, performance.now() - started);
    }
  }

  /**
   * Undo a failed setup on its own timeout (the client's may be spent). If DEL fails the record is
   * kept as `notready` with the error, so a teardown or the GC retries it; nothing is forgotten
   * while an IP may still be held.
   */
  private async cleanupFailedCreate(rec: SandboxRecord, log: Logger): Promise<void> {
    try {
      await this.teardown(rec);
      await this.store.delete(rec.id);
      this.step('removed', rec);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'cleanup after failed setup did not finish; keeping the sandbox as notready');
      rec.phase = 'notready';
      rec.lastError = (err as Error).message;
      await this.store.put(rec).catch(() => undefined);
      this.step('stopped', rec);
    }
  }

  /**
   * ADD: loopback and the cluster network (in parallel unless setup_serially), then each extra
   * attachment in order with its own timeout. A failure stops here; the caller DELs everything.
   * The one ADD loop of podnet.
   */
  /** `cacheWrites` collects the result cache's writes, for the caller to settle (OpOptions.deferCacheWrites). */
  private async setupAttachments(rec: SandboxRecord, clientSignal: AbortSignal, cacheWrites: Array<Promise<void>>): Promise<SetupResult> {
    const add = async (a: AttachmentRecord): Promise<{ network: string; ifName: string; result: Result }> => {
      const signal = withTimeout(clientSignal, a.timeoutMs ?? this.cfg.cni.pluginTimeoutMs);
      const r = await this.networks.cni.addNetworkList(attachmentList(rec, a), this.runtimeConf(rec, a, rec.netnsPath), { signal, deferCacheWrites: cacheWrites });
      return { network: a.network, ifName: a.ifName, result: toCurrent(r) };
    };
    const primary = rec.attachments.filter((a) => !a.secondary);
    const results: SetupResult['results'] = [];
    if (this.cfg.cni.setupSerially) {
      for (const a of primary) results.push(await add(a));
    } else {
      results.push(...(await settleAll(primary.map(add))));
    }
    for (const a of rec.attachments.filter((x) => x.secondary)) results.push(await add(a));
    const summary = summarize(results);
    for (const a of rec.attachments) if (a.defaultRoute) await this.moveDefaultRoute(rec, a, summary, clientSignal);
    return summary;
  }

  /** Multus "default-route": the pod's default route goes via this attachment's gateway. */
  private async moveDefaultRoute(rec: SandboxRecord, a: AttachmentRecord, summary: SetupResult, clientSignal: AbortSignal): Promise<void> {
    const iface = summary.interfaces[a.ifName];
    const gateways = a.defaultRoute!.length > 0 ? a.defaultRoute! : (iface?.ipConfigs ?? []).flatMap((c) => (c.gateway ? [c.gateway] : []));
    if (gateways.length === 0) throw invalidArgument(`network "${a.ref ?? a.network}": default-route requested but the attachment has no gateway`);
    const nsenter = await nsenterPath();
    const env = { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
    for (const gw of gateways) {
      const family = isIPv4(gw) ? '-4' : '-6';
      const signal = withTimeout(clientSignal, this.cfg.cni.pluginTimeoutMs);
      const r = await this.spawner.spawn({ path: nsenter, args: [`--net=${rec.netnsPath}`, 'ip', family, 'route', 'replace', 'default', 'via', gw, 'dev', a.ifName], env, signal, maxOutput: 1024 * 1024 });
      if (r.exitCode !== 0) throw new Error(`failed to move the default route to ${gw} on ${a.ifName}: ${r.stderr.toString('utf8').trim() || `nsenter ${r.signal ?? `exit ${r.exitCode}`}`}`);
    }
  }

  /**
   * What an attachment's plugins get: the pod's CNI_ARGS plus its own, and capability args. The
   * cluster network gets the pod's (port mappings, bandwidth, dns); an extra attachment only its
   * own requests plus the pod annotations and cgroup path.
   */
  private runtimeConf(rec: SandboxRecord, a: AttachmentRecord, netNS: string): RuntimeConf {
    const pod = rec.capabilityArgs;
    const shared: Record<string, unknown> = {};
    for (const k of [POD_ANNOTATIONS_CAPABILITY, 'cgroupPath']) if (pod[k] !== undefined) shared[k] = pod[k];
    const capabilityArgs = a.secondary ? { ...shared, ...(a.capabilityArgs ?? {}) } : { ...pod, ...(a.capabilityArgs ?? {}) };
    return { containerID: rec.id, netNS, ifName: a.ifName, args: [...rec.cniArgs, ...(a.cniArgs ?? [])], capabilityArgs };
  }

  // ---- tear down ------------------------------------------------------------------------------

  /**
   * DEL every attachment, mirroring ADD: the extra attachments last-added first, then loopback and
   * the cluster network together (unless setup_serially), each from its cached config. Then the
   * namespace is removed if it is ours, along with the cache entries and `alongside` (the caller's
   * record write): none of them depends on another once every DEL has returned. The namespace may
   * already be gone: DEL still runs with an empty CNI_NETNS so IPAM is released. A runtime-owned
   * namespace is never removed. `cached`: the cache entries, when the caller has read them.
   */
  private async teardown(rec: SandboxRecord, opts: { cached?: CachedEntries; alongside?: () => Promise<void> } = {}): Promise<void> {
    // The node's namespace: nothing to DEL, only the caller's record write.
    if (rec.hostNetwork) return opts.alongside?.();
    const signal = AbortSignal.timeout(this.cfg.cleanupTimeoutMs);
    const nsExists = rec.netnsPath !== '' && (await this.netns.exists(rec.netnsPath));
    const errors: Error[] = [];
    const cacheWrites: Array<Promise<void>> = [];
    const del = async (a: AttachmentRecord): Promise<void> => {
      try {
        const rt = this.runtimeConf(rec, a, nsExists ? rec.netnsPath : '');
        const cached = opts.cached?.get(a);
        await delAttachment(this.networks.cni, { list: attachmentList(rec, a), ifName: a.ifName }, rt, signal, { deferCacheWrites: cacheWrites, ...(cached ? { cached } : {}) });
      } catch (err) {
        // Only an attachment no plugin of which returned from ADD may fail its DEL and still be
        // forgotten (rollback.ts); anything else keeps the sandbox until a DEL succeeds.
        const completed = await this.networks.cni.cache.get(a.network, rec.id, a.ifName).catch(() => undefined);
        if (neverAdded(a) && !completed) {
          this.log.warn({ sandbox: rec.id, network: a.network, ifName: a.ifName, err: (err as Error).message }, 'ignoring DEL failure of an attachment no plugin of which returned from ADD');
          return;
        }
        errors.push(err as Error);
      }
    };
    this.timings.set(rec.id, rec.timings);
    try {
      for (const a of rec.attachments.filter((x) => x.secondary).reverse()) await del(a);
      const primary = rec.attachments.filter((x) => !x.secondary).reverse();
      if (this.cfg.cni.setupSerially) for (const a of primary) await del(a);
      else await Promise.all(primary.map(del));
    } finally {
      this.timings.delete(rec.id);
    }
    if (errors.length > 0) {
      await Promise.allSettled(cacheWrites);
      throw errors[0];
    }
    const removeNetns = async (): Promise<void> => {
      if (!rec.netnsPath || rec.netnsOwner !== 'podnet') return;
      await this.timedNetns('remove', rec.door, () => this.netns.remove(rec.netnsPath));
      await this.ledger.remove(rec.netnsPath);
    };
    await settleAll([removeNetns(), ...cacheWrites, ...(opts.alongside ? [opts.alongside()] : [])]);
  }

  /**
   * Each attachment's cache entry, read in one go (a read changes nothing, so it may overlap a
   * write). One the cache does not have (a power cut lost it, a hand removed it) is made from the
   * record, which holds the same config, args and result, so DEL still gets its prevResult.
   */
  private async readCachedEntries(rec: SandboxRecord): Promise<CachedEntries> {
    const out: CachedEntries = new Map();
    if (rec.hostNetwork) return out;
    await Promise.all(
      rec.attachments.map(async (a) => {
        const rt = this.runtimeConf(rec, a, rec.netnsPath);
        const entry = (await this.networks.cni.getCachedAttachment(a.network, rt).catch(() => undefined)) ?? recordedEntry(rec, a, rt);
        if (entry) out.set(a, entry);
      }),
    );
    return out;
  }

  async tearDown(id: string, opts: TeardownOptions = {}): Promise<void> {
    try {
      await this.recovered();
      if (!this.store.get(id)) return;
      await this.locks.run(id, async () => {
        await this.networkWork(() => this.stopLocked(id, opts.forget === true));
        const rec = this.store.get(id);
        if (opts.forget && rec) {
          await this.store.delete(id);
          this.step('removed', rec);
        }
      });
    } catch (err) {
      throw toEngineError(err);
    }
  }

  /**
   * Stop: `stopping` is durable before any DEL, so a crash in the middle is finished by recovery.
   * The `notready` record is written beside the namespace's removal; a sandbox about to be
   * forgotten skips it (its record is deleted next, and `stopping` already says what to finish).
   */
  private async stopLocked(id: string, forgetting = false): Promise<void> {
    const rec = this.store.get(id);
    if (!rec) return;
    // Already torn down (Stop then Remove): nothing to DEL again.
    if (rec.phase === 'notready' && !rec.lastError && !rec.teardownPending && !(rec.netnsPath && (await this.netns.exists(rec.netnsPath)))) return;
    rec.phase = 'stopping';
    const [, cached] = await Promise.all([this.store.put(rec), this.readCachedEntries(rec)]);
    const stopped = (): void => {
      rec.phase = 'notready';
      rec.ips = [];
      delete rec.lastError;
      delete rec.teardownPending;
      Hotplug.forgetRemoved(rec);
    };
    try {
      await this.teardown(rec, {
        cached,
        ...(forgetting
          ? {}
          : {
              alongside: () => {
                stopped();
                return this.store.put(rec);
              },
            }),
      });
    } catch (err) {
      rec.phase = 'notready';
      rec.lastError = (err as Error).message;
      await this.store.put(rec);
      throw toEngineError(err, `failed to tear down network of sandbox ${id}`);
    }
    if (forgetting) stopped();
    this.step('stopped', rec);
  }

  // ---- check, status, list --------------------------------------------------------------------

  async check(id: string, signal: AbortSignal): Promise<void> {
    try {
      await this.recovered();
      const found = this.store.get(id);
      if (!found || found.phase === 'creating') throw notFound(`sandbox "${id}" not found`);
      await this.locks.run(id, () =>
        this.networkWork(async () => {
          const rec = this.store.get(id);
          if (!rec) throw notFound(`sandbox "${id}" not found`);
          if (rec.phase !== 'ready') throw failedPrecondition(`sandbox ${id} is ${rec.phase}, not ready: nothing to check`);
          // An attachment being hot-plugged or removed is not the pod's (yet, or any more).
          for (const a of liveAttachments(rec)) {
            const rt = this.runtimeConf(rec, a, rec.netnsPath);
            const cached = await this.networks.cni.getNetworkListCachedConfig(a.network, rt).catch(() => undefined);
            const list = cached?.list ?? attachmentList(rec, a);
            // CHECK arrived in 0.4.0; older lists have none to run.
            if (!versionAtLeast(list.cniVersion, '0.4.0')) continue;
            const timeout = withTimeout(signal, a.timeoutMs ?? this.cfg.cni.pluginTimeoutMs);
            await this.networks.cni.checkNetworkList(list, cached ? { ...cached.rt, netNS: rec.netnsPath } : rt, { signal: timeout });
          }
        }),
      );
    } catch (err) {
      throw toEngineError(err, `check of sandbox ${id} failed`);
    }
  }

  get(id: string): Readonly<SandboxRecord> | undefined {
    return this.store.get(id);
  }

  resolve(idOrPrefix: string, door?: Door): Readonly<SandboxRecord> | undefined {
    try {
      return this.store.resolve(idOrPrefix, door);
    } catch (err) {
      if (err instanceof StoreError) throw invalidArgument(err.message);
      throw toEngineError(err);
    }
  }

  list(filter: { door?: Door } = {}): ReadonlyArray<Readonly<SandboxRecord>> {
    const all = this.store.all();
    return filter.door === undefined ? all : all.filter((r) => r.door === filter.door);
  }

  networkReadiness(selector: NetworkSelector): NetworkStatus {
    if ('network' in selector) {
      const nets = this.networks.forNetwork(selector.network);
      return nets ? { ready: true, message: `network "${selector.network}" is loaded` } : { ready: false, message: `network "${selector.network}" is not loaded from any conf dir` };
    }
    try {
      this.networks.forHandler(selector.runtimeHandler);
    } catch (err) {
      return { ready: false, message: (err as Error).message };
    }
    return this.networks.status(selector.runtimeHandler || undefined);
  }

  /** Resolves once no recovery is running (at once when none is). */
  private async recovered(): Promise<void> {
    await this.recovering?.catch(() => undefined);
  }

  /** ADD/DEL work: bounded by max_concurrent_setups, and never while CNI GC runs. */
  private networkWork<T>(fn: () => Promise<T>): Promise<T> {
    return this.setupSlots.run(() => this.gcLock.runShared(fn));
  }

  // ---- restart recovery -----------------------------------------------------------------------

  /**
   * Before serving: finish whatever a crash interrupted. `creating` is undone and forgotten (the
   * client never got its id), `stopping` is finished, a `ready` sandbox whose namespace vanished
   * becomes `notready`, and namespaces of ours that no record owns are removed. Runtime-owned
   * namespaces are only ever looked at.
   */
  recover(): Promise<RecoveryReport> {
    const running = this.recoverOnce().finally(() => {
      if (this.recovering === running) this.recovering = undefined;
    });
    this.recovering = running;
    return running;
  }

  private async recoverOnce(): Promise<RecoveryReport> {
    const { records, corrupt } = await this.store.load();
    // Plugins of a daemon that was killed may still be running ADD/DEL for these sandboxes; they
    // must be gone before we DEL, or an ADD finishing afterwards would leak its IP.
    const unfinished = new Set(records.filter((r) => r.phase === 'creating' || r.phase === 'stopping' || this.hotplug.hasPending(r)).map((r) => r.id));
    const killed = await killPluginProcesses(unfinished);
    await this.ledger.removeTempFiles();
    await this.networks.cni.cache.removeTempFiles();
    if (killed > 0) this.log.warn({ killed }, 'killed plugin processes left running by the previous daemon');
    let finished = 0;
    // One read of the mount table for every ready sandbox, not one per sandbox. A runtime's
    // namespace may be mounted where we cannot see it (its own mount namespace): asked directly.
    const mounted = await nsfsMounts();
    const present = async (rec: SandboxRecord): Promise<boolean> => (rec.netnsOwner === 'podnet' ? mounted.has(rec.netnsPath) : this.netns.exists(rec.netnsPath));
    await Promise.all(
      records.map(async (rec) => {
        const log = this.log.child({ sandbox: rec.id, phase: rec.phase, door: rec.door });
        if (rec.phase === 'creating') {
          finished++;
          await this.cleanupFailedCreate(rec, log);
          log.info('recovered: undid an interrupted setup');
        } else if (rec.phase === 'stopping') {
          finished++;
          await this.stopLocked(rec.id).catch((err: Error) => log.warn({ err: err.message }, 'recovered stop failed; will retry on the next teardown'));
        } else if (rec.phase === 'ready' && !rec.hostNetwork && !(await present(rec))) {
          rec.phase = 'notready';
          rec.ips = [];
          rec.teardownPending = true;
          await this.store.put(rec);
          log.warn('network namespace is gone; sandbox marked notready');
        } else if (rec.phase === 'ready' && this.hotplug.hasPending(rec)) {
          finished++;
          await this.hotplug.recover(rec);
          log.info('recovered: finished or undid an interrupted attach or detach');
        }
      }),
    );
    const owned = new Set(this.store.all().map((r) => r.netnsPath).filter(Boolean));
    let orphans = 0;
    // Only the ledger's entries: it lists the namespaces podnet made, never a runtime's.
    for (const path of await this.ledger.list()) {
      if (owned.has(path)) continue;
      try {
        await this.netns.remove(path);
        await this.ledger.remove(path);
        orphans++;
      } catch (err) {
        this.log.warn({ netns: path, err: (err as Error).message }, 'failed to remove orphaned network namespace');
      }
    }
    for (const file of corrupt) this.log.error({ file }, 'unreadable sandbox record; left in place for inspection');
    return { finished, orphans, corrupt };
  }

  // ---- garbage collection ---------------------------------------------------------------------

  /**
   * CNI GC. A runtime's valid list first releases that door's pods it no longer knows (each a
   * teardown, under its own lock); then, with no ADD or DEL in flight, stale cache entries of ours
   * are DEL'ed and 1.1.0 networks get GC.
   */
  async gc(req: GCRequest = {}): Promise<GCReport> {
    await this.recovered();
    const released: string[] = [];
    const errors: string[] = [];
    if (req.validAttachments && req.door) {
      const valid = new Set(req.validAttachments.map((a) => a.containerID));
      for (const rec of this.list({ door: req.door })) {
        if (valid.has(rec.id) || rec.phase === 'creating' || (req.networks && !onNetworks(rec, req.networks))) continue;
        try {
          await this.tearDown(rec.id, { forget: true });
          released.push(rec.id);
        } catch (err) {
          errors.push(`teardown of ${rec.id}: ${(err as Error).message}`);
        }
      }
    }
    // A teardown that failed (a Stop, or the rollback of a failed setup) is tried again, as a Stop
    // would, so an IP is released once whatever broke the DEL is fixed. Before GC proper: it takes
    // the ADD/DEL lock that GC holds exclusively.
    for (const rec of this.list(req.door ? { door: req.door } : {})) {
      if (rec.phase !== 'notready' || !rec.lastError) continue;
      try {
        await this.tearDown(rec.id);
        this.log.info({ sandbox: rec.id }, 'retried a failed teardown: done');
      } catch (err) {
        this.log.warn({ sandbox: rec.id, err: (err as Error).message }, 'retried a failed teardown: still failing; will retry');
      }
    }
    // So is a hot-plug removal of a ready pod whose DEL failed.
    for (const rec of this.list(req.door ? { door: req.door } : {})) {
      if (rec.phase === 'ready' && this.hotplug.hasPending(rec)) await this.hotplug.retry(rec.id).catch(() => undefined);
    }
    const report = await this.gcLock.runExclusive(() => collectGarbage(this.networks.cni, this.networks, this, this.log, req.door));
    return { ...report, releasedSandboxes: released.length, errors: [...errors, ...report.errors] };
  }

  /** A sandbox of ours (of this door, when given) whose teardown finished: anything it still has in the CNI cache is a leak. */
  isStaleOwned(id: string, door?: Door): boolean {
    const rec = this.store.get(id);
    return rec !== undefined && (door === undefined || rec.door === door) && rec.phase === 'notready' && !rec.lastError;
  }

  /** Sandboxes whose attachments are still in use, for CNI GC. */
  validAttachments(): Array<{ containerID: string; ifname: string }> {
    const out: Array<{ containerID: string; ifname: string }> = [];
    for (const rec of this.store.all()) {
      if (rec.hostNetwork) continue;
      if (rec.phase === 'notready' && !rec.lastError) continue;
      for (const a of rec.attachments) out.push({ containerID: rec.id, ifname: a.ifName });
    }
    return out;
  }
}

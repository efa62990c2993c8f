import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { Logger } from 'pino';
import { confListFromBytes } from '../cni/config.js';
import type { PluginExecEvent } from '../cni/cni.js';
import { killPluginProcesses } from '../cni/orphans.js';
import { delAttachment, summarize, type Attachment, type Networks, type SetupResult } from '../cni/networks.js';
import { toCurrent, type Result } from '../cni/result.js';
import { execa } from 'execa';
import type { RuntimeConf } from '../cni/runtime-conf.js';
import {
  NamespaceMode,
  PodSandboxConfig,
  PodSandboxState,
  type ListPodSandboxRequest,
  type ListPodSandboxResponse,
  type PodSandbox,
  type PodSandboxStatusRequest,
  type PodSandboxStatusResponse,
  type RemovePodSandboxRequest,
  type RunPodSandboxRequest,
  type RunPodSandboxResponse,
  type StopPodSandboxRequest,
} from '../gen/runtime/v1/api.js';
import { nsfsMounts, type NetnsManager } from '../netns/netns.js';
import type { DaemonConfig } from './config.js';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, toCRIError } from './errors.js';
import { KeyedMutex, Semaphore, SharedExclusiveLock } from '../engine/locks.js';
import type { NetworkManager } from '../engine/network-manager.js';
import {
  DEFAULT_NETWORK_ANNOTATION,
  NETWORKS_ANNOTATION,
  parseDefaultNetwork,
  parseNetworksAnnotation,
  resolveAttachments,
  resolveDefaultNetwork,
  type NADStore,
} from '../engine/attachments.js';
import { NetnsLedger, SandboxStore, StoreError, type AttachmentRecord, type IPRecord, type PluginTiming, type SandboxRecord } from '../engine/store.js';
import { validatePodConfig, type ValidatedPod } from './validate.js';

/** The time source, injected so tests can pin created_at. */
export interface Clock {
  /** Nanoseconds since the epoch. */
  nowNs(): bigint;
}

export const systemClock: Clock = { nowNs: () => BigInt(Date.now()) * 1_000_000n };

/** Per-call context from the RPC layer: aborts when the client cancels or its deadline passes. */
export interface CallContext {
  signal: AbortSignal;
}

export interface SandboxServiceDeps {
  cfg: DaemonConfig;
  store: SandboxStore;
  ledger: NetnsLedger;
  netns: NetnsManager;
  networks: NetworkManager;
  nads: NADStore;
  log: Logger;
  clock?: Clock;
}

const POD_ANNOTATIONS_CAPABILITY = 'io.kubernetes.cri.pod-annotations';
const DEFAULT_IFNAME = 'eth0';

/** The network config list an attachment was recorded with (never the current file). */
function attachmentList(rec: SandboxRecord, a: AttachmentRecord) {
  return confListFromBytes(Buffer.from(a.config, 'base64'), `sandbox:${rec.id}/${a.ifName}`);
}

/** Multus's network-status list: every attachment but loopback, the cluster network marked default. */
export function networkStatus(rec: SandboxRecord): Array<Record<string, unknown>> {
  const movedDefault = rec.attachments.some((a) => a.defaultRoute);
  return rec.results
    .filter((r) => r.ifName !== 'lo')
    .map((r) => {
      const a = rec.attachments.find((x) => x.ifName === r.ifName);
      const summary = summarize([{ network: r.network, ifName: r.ifName, result: r.result as Result }]);
      const iface = summary.interfaces[r.ifName];
      const dns = summary.dns[0];
      return {
        name: a?.ref ?? r.network,
        interface: r.ifName,
        ips: (iface?.ipConfigs ?? []).map((c) => c.ip),
        ...(iface?.mac ? { mac: iface.mac } : {}),
        default: movedDefault ? Boolean(a?.defaultRoute) : !a?.secondary,
        ...(dns && Object.keys(dns).length ? { dns } : {}),
      };
    });
}

function newSandboxID(): string {
  return randomBytes(32).toString('hex');
}

function toState(rec: SandboxRecord): PodSandboxState {
  return rec.phase === 'ready' ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY;
}

/**
 * Orders the default interface's IPs as the CRI wants them: the preferred family first
 * (ip_pref "ipv4"/"ipv6"), or the plugins' order ("cni"); the rest become additional_ips.
 */
export function selectPodIPs(result: SetupResult, pref: DaemonConfig['cni']['ipPref']): IPRecord[] {
  const iface = result.interfaces[DEFAULT_IFNAME];
  const ips = (iface?.ipConfigs ?? []).map((c) => ({ ip: c.ip, ifName: DEFAULT_IFNAME, v4: c.family === 4 }));
  if (pref !== 'cni') {
    const wantV4 = pref === 'ipv4';
    const i = ips.findIndex((x) => x.v4 === wantV4);
    if (i > 0) ips.unshift(...ips.splice(i, 1));
  }
  return ips.map(({ ip, ifName }) => ({ ip, ifName }));
}

/**
 * The pod sandbox RPCs. Each public method is one RPC, written top to bottom; the gRPC layer
 * only maps messages and errors.
 */
export class SandboxService {
  private readonly cfg: DaemonConfig;
  private readonly store: SandboxStore;
  private readonly ledger: NetnsLedger;
  private readonly netns: NetnsManager;
  private readonly networks: NetworkManager;
  private readonly nads: NADStore;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly locks = new KeyedMutex();
  private readonly setupSlots: Semaphore;
  private readonly gcLock = new SharedExclusiveLock();
  /** Plugin timings of operations in flight, by sandbox id. */
  private readonly timings = new Map<string, PluginTiming[]>();

  constructor(deps: SandboxServiceDeps) {
    this.cfg = deps.cfg;
    this.store = deps.store;
    this.ledger = deps.ledger;
    this.netns = deps.netns;
    this.networks = deps.networks;
    this.nads = deps.nads;
    this.log = deps.log;
    this.clock = deps.clock ?? systemClock;
    this.setupSlots = new Semaphore(deps.cfg.maxConcurrentSetups);
  }

  /** Wired to the CNI library's observer: keeps per-plugin timings for the sandbox's record. */
  onPluginExec(ev: PluginExecEvent): void {
    const list = this.timings.get(ev.containerID);
    if (!list) return;
    list.push({ network: ev.network, plugin: ev.plugin, verb: ev.verb, ms: Math.round(ev.durationMs * 1000) / 1000, ...(ev.error ? { error: ev.error.message } : {}) });
  }

  // ---- RunPodSandbox ------------------------------------------------------------------------

  async runPodSandbox(req: RunPodSandboxRequest, ctx: CallContext): Promise<RunPodSandboxResponse> {
    // 1. Everything the client sent is checked before anything exists.
    const pod = validatePodConfig(req.config);
    const handler = req.runtimeHandler;
    const networks = pod.hostNetwork ? undefined : this.networks.forHandler(handler);
    if (networks && !networks.ready()) {
      throw failedPrecondition(`network for runtime handler "${handler || this.cfg.defaultRuntimeHandler}" is not ready: ${this.networks.status(handler || undefined).message}`);
    }
    const attachments = pod.hostNetwork ? [] : await this.resolvePodNetworks(pod, networks!);
    const podKey = `pod:${pod.metadata.namespace}/${pod.metadata.name}/${pod.metadata.uid}/${pod.metadata.attempt}`;
    return this.locks.run(podKey, async () => {
      // 2. One live sandbox per pod attempt.
      const existing = this.store.findLive(pod.metadata);
      if (existing) {
        throw alreadyExists(`sandbox for pod ${pod.metadata.namespace}/${pod.metadata.name} (uid ${pod.metadata.uid}, attempt ${pod.metadata.attempt}) already exists: ${existing.id}`);
      }
      const id = newSandboxID();
      return this.locks.run(id, async () => {
        const rec = this.newRecord(id, req.config!, pod, handler, attachments);
        if (pod.hostNetwork) {
          // 3a. The node's namespace: no netns, no CNI.
          rec.phase = 'ready';
          await this.store.put(rec);
          return { podSandboxId: id };
        }
        await this.networkWork(() => this.createNetwork(rec, ctx));
        return { podSandboxId: id };
      });
    });
  }

  /**
   * Every network the pod joins, resolved before anything exists: loopback, the cluster network
   * (or the default-network annotation's), then the networks annotation's attachments.
   */
  private async resolvePodNetworks(pod: ValidatedPod, networks: Networks): Promise<AttachmentRecord[]> {
    const toRecord = (a: Attachment): AttachmentRecord => ({ network: a.list.name, ifName: a.ifName, config: a.list.bytes.toString('base64') });
    const base = networks.attachments.map(toRecord);
    const wanted = pod.annotations[NETWORKS_ANNOTATION];
    const defaultNet = pod.annotations[DEFAULT_NETWORK_ANNOTATION];
    if (wanted === undefined && defaultNet === undefined) return base;
    const selections = wanted === undefined ? [] : parseNetworksAnnotation(wanted, pod.metadata.namespace);
    const defaultSel = defaultNet === undefined ? undefined : parseDefaultNetwork(defaultNet, pod.metadata.namespace);
    const { nads } = await this.nads.load();
    const find = (name: string) => this.networks.findNetwork(name);
    if (defaultSel) {
      const list = resolveDefaultNetwork(defaultSel, nads, find);
      const i = base.findIndex((a) => a.ifName === DEFAULT_IFNAME);
      const replaced: AttachmentRecord = { network: list.name, ifName: DEFAULT_IFNAME, config: list.bytes.toString('base64'), ref: `${defaultSel.namespace}/${defaultSel.name}` };
      if (i >= 0) base[i] = replaced;
      else base.push(replaced);
    }
    return [...base, ...resolveAttachments(selections, nads, find, base.map((a) => a.ifName))];
  }

  private newRecord(id: string, config: PodSandboxConfig, pod: ValidatedPod, handler: string, attachments: AttachmentRecord[]): SandboxRecord {
    const labels: Record<string, string> = {
      K8S_POD_NAMESPACE: pod.metadata.namespace,
      K8S_POD_NAME: pod.metadata.name,
      K8S_POD_INFRA_CONTAINER_ID: id,
      K8S_POD_UID: pod.metadata.uid,
    };
    const capabilityArgs: Record<string, unknown> = {};
    if (pod.portMappings.length > 0) capabilityArgs['portMappings'] = pod.portMappings;
    if (pod.bandwidth) capabilityArgs['bandwidth'] = pod.bandwidth;
    if (pod.dns) capabilityArgs['dns'] = pod.dns;
    if (pod.cgroupParent) capabilityArgs['cgroupPath'] = pod.cgroupParent;
    capabilityArgs[POD_ANNOTATIONS_CAPABILITY] = pod.annotations;
    return {
      id,
      phase: 'creating',
      metadata: pod.metadata,
      config: PodSandboxConfig.toJSON(config) as Record<string, unknown>,
      runtimeHandler: handler,
      createdAt: this.clock.nowNs().toString(),
      hostNetwork: pod.hostNetwork,
      netnsPath: pod.hostNetwork ? '' : this.netns.newPath(),
      attachments,
      cniArgs: [['IgnoreUnknown', '1'], ...Object.entries(labels)],
      capabilityArgs,
      ips: [],
      results: [],
      timings: [],
      version: 1,
    };
  }

  /**
   * The network half of RunPodSandbox. Order matters for crash safety: the record (phase
   * `creating`, netns path, attachment configs) is on disk before the namespace exists, and the
   * namespace exists before any plugin runs, so a restart always knows what to undo.
   */
  private async createNetwork(rec: SandboxRecord, ctx: CallContext): Promise<void> {
    const log = this.log.child({ sandbox: rec.id, pod: `${rec.metadata.namespace}/${rec.metadata.name}` });
    // The record and the ledger entry are independent files; written together they cost one
    // fsync round trip on the Run path instead of two.
    const [recorded, ledgered] = await Promise.allSettled([this.store.put(rec), this.ledger.add(rec.netnsPath)]);
    if (recorded.status === 'rejected') {
      // No namespace exists yet; an entry left by a failed remove is swept at the next start.
      if (ledgered.status === 'fulfilled') await this.ledger.remove(rec.netnsPath).catch(() => undefined);
      throw toCRIError(recorded.reason, 'failed to record sandbox');
    }
    this.timings.set(rec.id, rec.timings);
    try {
      if (ledgered.status === 'rejected') throw ledgered.reason;
      await this.netns.create(rec.netnsPath);
      const result = await this.setupAttachments(rec, ctx.signal);
      rec.ips = selectPodIPs(result, this.cfg.cni.ipPref);
      rec.results = result.results;
      rec.phase = 'ready';
      await this.store.put(rec);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'pod network setup failed; cleaning up');
      await this.cleanupFailedCreate(rec, log);
      throw toCRIError(err, `failed to set up network for sandbox ${rec.id}`);
    } finally {
      this.timings.delete(rec.id);
    }
  }

  /**
   * Undo a failed RunPodSandbox on its own timeout (the client's may be spent). If DEL fails the
   * record is kept as `notready` with the error, so Stop/Remove or the GC retry it; nothing is
   * forgotten while an IP may still be held.
   */
  private async cleanupFailedCreate(rec: SandboxRecord, log: Logger): Promise<void> {
    try {
      await this.teardown(rec, true);
      await this.store.delete(rec.id);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'cleanup after failed setup did not finish; keeping the sandbox as notready');
      rec.phase = 'notready';
      rec.lastError = (err as Error).message;
      await this.store.put(rec).catch(() => undefined);
    }
  }

  /**
   * ADD: loopback and the cluster network (in parallel unless setup_serially), then each extra
   * attachment in order with its own timeout. A failure stops here; the caller DELs everything.
   */
  private async setupAttachments(rec: SandboxRecord, clientSignal: AbortSignal): Promise<SetupResult> {
    const add = async (a: AttachmentRecord): Promise<{ network: string; ifName: string; result: Result }> => {
      const signal = AbortSignal.any([clientSignal, AbortSignal.timeout(a.timeoutMs ?? this.cfg.cni.pluginTimeoutMs)]);
      const r = await this.networks.cni.addNetworkList(attachmentList(rec, a), this.runtimeConf(rec, a, rec.netnsPath), { signal });
      return { network: a.network, ifName: a.ifName, result: toCurrent(r) };
    };
    const primary = rec.attachments.filter((a) => !a.secondary);
    const results: SetupResult['results'] = [];
    if (this.cfg.cni.setupSerially) {
      for (const a of primary) results.push(await add(a));
    } else {
      const settled = await Promise.allSettled(primary.map(add));
      const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
      if (failed) throw failed.reason;
      for (const x of settled) if (x.status === 'fulfilled') results.push(x.value);
    }
    for (const a of rec.attachments.filter((x) => x.secondary)) results.push(await add(a));
    const summary = summarize(results);
    for (const a of rec.attachments) if (a.defaultRoute) await this.moveDefaultRoute(rec, a, summary);
    return summary;
  }

  /** Multus "default-route": the pod's default route goes via this attachment's gateway. */
  private async moveDefaultRoute(rec: SandboxRecord, a: AttachmentRecord, summary: SetupResult): Promise<void> {
    const iface = summary.interfaces[a.ifName];
    const gateways = a.defaultRoute!.length > 0 ? a.defaultRoute! : (iface?.ipConfigs ?? []).flatMap((c) => (c.gateway ? [c.gateway] : []));
    if (gateways.length === 0) throw invalidArgument(`network "${a.ref ?? a.network}": default-route requested but the attachment has no gateway`);
    for (const gw of gateways) {
      const family = isIPv4(gw) ? '-4' : '-6';
      const r = await execa('nsenter', [`--net=${rec.netnsPath}`, 'ip', family, 'route', 'replace', 'default', 'via', gw, 'dev', a.ifName], { reject: false });
      if (r.exitCode !== 0) throw new Error(`failed to move the default route to ${gw} on ${a.ifName}: ${String(r.stderr).trim()}`);
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

  /**
   * DEL every attachment (reverse order, cached config first), then remove the namespace. The
   * namespace may already be gone: DEL still runs with an empty CNI_NETNS so IPAM is released.
   */
  private async teardown(rec: SandboxRecord, rollback = false): Promise<void> {
    if (rec.hostNetwork) return;
    const signal = AbortSignal.timeout(this.cfg.cleanupTimeoutMs);
    const nsExists = rec.netnsPath !== '' && (await this.netns.exists(rec.netnsPath));
    const errors: Error[] = [];
    this.timings.set(rec.id, rec.timings);
    try {
      for (const a of rec.attachments.slice().reverse()) {
        try {
          const rt = this.runtimeConf(rec, a, nsExists ? rec.netnsPath : '');
          await delAttachment(this.networks.cni, { list: attachmentList(rec, a), ifName: a.ifName }, rt, signal);
        } catch (err) {
          // Rolling back a failed ADD: an attachment whose ADD never completed has no cache entry
          // and nothing it could release; its DEL may fail for the very reason its ADD did (a
          // range too small), and must not strand the namespace and record (Multus ignores these too).
          const completed = await this.networks.cni.cache.get(a.network, rec.id, a.ifName).catch(() => undefined);
          if (rollback && !completed) {
            this.log.warn({ sandbox: rec.id, network: a.network, ifName: a.ifName, err: (err as Error).message }, 'ignoring DEL failure of an attachment whose ADD never completed');
            continue;
          }
          errors.push(err as Error);
        }
      }
    } finally {
      this.timings.delete(rec.id);
    }
    if (errors.length > 0) throw errors[0]!;
    if (rec.netnsPath) {
      await this.netns.remove(rec.netnsPath);
      await this.ledger.remove(rec.netnsPath);
    }
  }

  // ---- StopPodSandbox / RemovePodSandbox ----------------------------------------------------

  async stopPodSandbox(req: StopPodSandboxRequest, _ctx: CallContext): Promise<void> {
    const found = this.lookup(req.podSandboxId, false);
    if (!found) return;
    await this.locks.run(found.id, () => this.networkWork(() => this.stopLocked(found.id)));
  }

  private async stopLocked(id: string): Promise<void> {
    const rec = this.store.get(id);
    if (!rec) return;
    if (rec.phase === 'notready' && !rec.lastError && !(rec.netnsPath && (await this.netns.exists(rec.netnsPath)))) return;
    rec.phase = 'stopping';
    await this.store.put(rec);
    try {
      await this.teardown(rec);
    } catch (err) {
      rec.phase = 'notready';
      rec.lastError = (err as Error).message;
      await this.store.put(rec);
      throw toCRIError(err, `failed to tear down network of sandbox ${id}`);
    }
    rec.phase = 'notready';
    rec.ips = [];
    delete rec.lastError;
    await this.store.put(rec);
  }

  async removePodSandbox(req: RemovePodSandboxRequest, _ctx: CallContext): Promise<void> {
    const found = this.lookup(req.podSandboxId, false);
    if (!found) return;
    await this.locks.run(found.id, async () => {
      await this.networkWork(() => this.stopLocked(found.id));
      await this.store.delete(found.id);
    });
  }

  // ---- PodSandboxStatus / ListPodSandbox ----------------------------------------------------

  async podSandboxStatus(req: PodSandboxStatusRequest, _ctx: CallContext): Promise<PodSandboxStatusResponse> {
    const rec = this.lookup(req.podSandboxId, true)!;
    const config = PodSandboxConfig.fromJSON(rec.config);
    const nsOptions = config.linux?.securityContext?.namespaceOptions;
    const [primary, ...additional] = rec.ips;
    const response: PodSandboxStatusResponse = {
      status: {
        id: rec.id,
        metadata: { ...rec.metadata },
        state: toState(rec),
        createdAt: BigInt(rec.createdAt),
        network: { ip: primary?.ip ?? '', additionalIps: additional.map((x) => ({ ip: x.ip })) },
        linux: {
          namespaces: {
            options: {
              network: nsOptions?.network ?? NamespaceMode.POD,
              pid: nsOptions?.pid ?? NamespaceMode.POD,
              ipc: nsOptions?.ipc ?? NamespaceMode.POD,
              targetId: nsOptions?.targetId ?? '',
              usernsOptions: nsOptions?.usernsOptions,
            },
          },
        },
        labels: config.labels,
        annotations: config.annotations,
        runtimeHandler: rec.runtimeHandler,
      },
      info: {},
      containersStatuses: [],
      timestamp: 0n,
    };
    if (req.verbose) response.info = { info: JSON.stringify(this.verboseInfo(rec)) };
    return response;
  }

  private verboseInfo(rec: SandboxRecord): Record<string, unknown> {
    return {
      phase: rec.phase,
      runtimeHandler: rec.runtimeHandler,
      netNamespacePath: rec.netnsPath,
      hostNetwork: rec.hostNetwork,
      config: rec.config,
      attachments: rec.attachments.map((a) => ({ network: a.network, ifName: a.ifName })),
      cniResult: rec.results,
      'network-status': networkStatus(rec),
      pluginTimings: rec.timings,
      ...(rec.lastError ? { lastError: rec.lastError } : {}),
    };
  }

  listPodSandbox(req: ListPodSandboxRequest): ListPodSandboxResponse {
    const f = req.filter;
    const items: PodSandbox[] = [];
    for (const rec of this.store.all()) {
      // A sandbox still being created has no id the client knows yet.
      if (rec.phase === 'creating') continue;
      if (f?.id && !rec.id.startsWith(f.id)) continue;
      // A present-but-empty state filter means READY (0): proto3 does not send the zero.
      if (f?.state && toState(rec) !== f.state.state) continue;
      const labels = (rec.config['labels'] ?? {}) as Record<string, string>;
      if (f && Object.entries(f.labelSelector).some(([k, v]) => labels[k] !== v)) continue;
      items.push({
        id: rec.id,
        metadata: { ...rec.metadata },
        state: toState(rec),
        createdAt: BigInt(rec.createdAt),
        labels,
        annotations: (rec.config['annotations'] ?? {}) as Record<string, string>,
        runtimeHandler: rec.runtimeHandler,
      });
    }
    items.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
    return { items };
  }

  /** ADD/DEL work: bounded by max_concurrent_setups, and never while CNI GC runs. */
  private networkWork<T>(fn: () => Promise<T>): Promise<T> {
    return this.setupSlots.run(() => this.gcLock.runShared(fn));
  }

  /** Runs fn with no ADD or DEL in flight (CNI GC). */
  exclusively<T>(fn: () => Promise<T>): Promise<T> {
    return this.gcLock.runExclusive(fn);
  }

  // ---- restart recovery ---------------------------------------------------------------------

  /**
   * Before serving: finish whatever a crash interrupted. `creating` is undone and forgotten (the
   * kubelet never got its id), `stopping` is finished, a `ready` sandbox whose namespace vanished
   * becomes `notready`, and namespaces of ours that no record owns are removed.
   */
  async recover(): Promise<{ finished: number; orphans: number; corrupt: string[] }> {
    const { records, corrupt } = await this.store.load();
    // Plugins of a daemon that was killed may still be running ADD/DEL for these sandboxes; they
    // must be gone before we DEL, or an ADD finishing afterwards would leak its IP.
    const unfinished = new Set(records.filter((r) => r.phase === 'creating' || r.phase === 'stopping').map((r) => r.id));
    const killed = await killPluginProcesses(unfinished);
    await this.ledger.removeTempFiles();
    await this.networks.cni.cache.removeTempFiles();
    if (killed > 0) this.log.warn({ killed }, 'killed plugin processes left running by the previous daemon');
    let finished = 0;
    // One read of the mount table for every ready sandbox, not one per sandbox.
    const mounted = await nsfsMounts();
    await Promise.all(
      records.map(async (rec) => {
        const log = this.log.child({ sandbox: rec.id, phase: rec.phase });
        if (rec.phase === 'creating') {
          finished++;
          await this.cleanupFailedCreate(rec, log);
          log.info('recovered: undid an interrupted RunPodSandbox');
        } else if (rec.phase === 'stopping') {
          finished++;
          await this.stopLocked(rec.id).catch((err: Error) => log.warn({ err: err.message }, 'recovered stop failed; will retry on Stop/Remove'));
        } else if (rec.phase === 'ready' && !rec.hostNetwork && !mounted.has(rec.netnsPath)) {
          rec.phase = 'notready';
          rec.ips = [];
          await this.store.put(rec);
          log.warn('network namespace is gone; sandbox marked notready');
        }
      }),
    );
    const owned = new Set(this.store.all().map((r) => r.netnsPath).filter(Boolean));
    let orphans = 0;
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

  records(): SandboxRecord[] {
    return this.store.all();
  }

  /** A sandbox of ours whose teardown finished: anything it still has in the CNI cache is a leak. */
  isStaleOwned(id: string): boolean {
    const rec = this.store.get(id);
    return rec !== undefined && rec.phase === 'notready' && !rec.lastError;
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

  // ---- helpers ------------------------------------------------------------------------------

  /** Full id or unique prefix. NOT_FOUND when required, else undefined (Stop/Remove are idempotent). */
  private lookup(idOrPrefix: string, required: boolean): SandboxRecord | undefined {
    if (!idOrPrefix) throw invalidArgument('pod_sandbox_id is required');
    if (!/^[0-9a-f]{1,64}$/.test(idOrPrefix)) throw invalidArgument(`pod_sandbox_id "${idOrPrefix.slice(0, 80)}" is not a sandbox id (hex, up to 64 characters)`);
    let rec: SandboxRecord | undefined;
    try {
      rec = this.store.resolve(idOrPrefix);
    } catch (err) {
      if (err instanceof StoreError) throw invalidArgument(err.message);
      throw err;
    }
    if (rec?.phase === 'creating') rec = undefined;
    if (!rec && required) throw notFound(`sandbox "${idOrPrefix}" not found`);
    return rec;
  }
}

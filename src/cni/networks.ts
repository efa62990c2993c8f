import { access } from 'node:fs/promises';
import { confListFromBytes, loadConfDir, type ConfigLoadError, type NetworkConfigList } from './config.js';
import { CNIConfig, type CNIConfigOptions } from './cni.js';
import { MultiError } from './errors.js';
import { resultIPs, toCurrent, type AnyResult, type DNS, type Result, type Route } from './result.js';
import type { RuntimeConf } from './runtime-conf.js';
import { versionAtLeast } from './version.js';

/** The loopback network every pod gets first, as go-cni's WithLoNetwork. */
export const LOOPBACK_CONF = Buffer.from(
  JSON.stringify({ cniVersion: '0.3.1', name: 'cni-loopback', plugins: [{ type: 'loopback' }] }),
);
export const LOOPBACK_IFNAME = 'lo';
export const DEFAULT_IFNAME_PREFIX = 'eth';

/** A network of the pod and the interface it gets. */
export interface Attachment {
  list: NetworkConfigList;
  ifName: string;
}

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: string;
  hostIP?: string;
}

export interface BandWidth {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

export interface DNSCapability {
  servers?: string[];
  searches?: string[];
  options?: string[];
}

export interface IPRange {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

/** The per-pod arguments of setup/teardown; the named capabilities are conveniences over capabilityArgs. */
export interface NamespaceOptions {
  /** CNI_ARGS; "IgnoreUnknown=1" is always sent first so plugins accept keys they don't know. */
  labels?: Record<string, string>;
  portMappings?: PortMapping[];
  bandwidth?: BandWidth;
  dns?: DNSCapability;
  ipRanges?: IPRange[][];
  cgroupPath?: string;
  aliases?: string[];
  /** Any other capability by its convention name. */
  capabilityArgs?: Record<string, unknown>;
  /** Run attachments one after another rather than in parallel. */
  serial?: boolean;
  signal?: AbortSignal;
}

export interface IPConfigInfo {
  ip: string;
  address: string;
  family: 4 | 6;
  gateway?: string;
}

export interface InterfaceInfo {
  ipConfigs: IPConfigInfo[];
  mac?: string;
  sandbox?: string;
}

export interface SetupResult {
  /** By interface name (eth0, eth1, lo...). */
  interfaces: Record<string, InterfaceInfo>;
  dns: DNS[];
  routes: Route[];
  /** Each attachment's raw result in current (1.x) form, in attachment order. */
  results: Array<{ network: string; ifName: string; result: Result }>;
}

export interface NetworksOptions extends Omit<CNIConfigOptions, 'path'> {
  pluginDirs: readonly string[];
  confDir: string;
  /** How many networks of the conf dir a pod joins (go-cni's networkCount); default 1. */
  maxConfNum?: number;
  /** Add the loopback network first; default true. */
  loopback?: boolean;
  ifNamePrefix?: string;
}

function capabilityArgs(opts: NamespaceOptions): Record<string, unknown> {
  const caps: Record<string, unknown> = { ...(opts.capabilityArgs ?? {}) };
  if (opts.portMappings && opts.portMappings.length > 0) caps['portMappings'] = opts.portMappings;
  if (opts.bandwidth) caps['bandwidth'] = opts.bandwidth;
  if (opts.dns) caps['dns'] = opts.dns;
  if (opts.ipRanges && opts.ipRanges.length > 0) caps['ipRanges'] = opts.ipRanges;
  if (opts.cgroupPath) caps['cgroupPath'] = opts.cgroupPath;
  if (opts.aliases && opts.aliases.length > 0) caps['aliases'] = opts.aliases;
  return caps;
}

function cniArgs(labels: Record<string, string> | undefined): Array<[string, string]> {
  const args: Array<[string, string]> = [['IgnoreUnknown', '1']];
  for (const [k, v] of Object.entries(labels ?? {})) if (k !== 'IgnoreUnknown') args.push([k, v]);
  return args;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Folds per-attachment results into the per-interface view the CRI layer needs. */
export function summarize(results: SetupResult['results']): SetupResult {
  // No prototype: an interface the pod asked to call "constructor" or "toString" is just a name.
  const out: SetupResult = { interfaces: Object.create(null) as SetupResult['interfaces'], dns: [], routes: [], results };
  for (const { result } of results) {
    const ifaces = result.interfaces ?? [];
    for (const iface of ifaces) {
      if (!iface.sandbox) continue;
      out.interfaces[iface.name] ??= { ipConfigs: [], ...(iface.mac ? { mac: iface.mac } : {}), sandbox: iface.sandbox };
    }
    for (const ip of resultIPs(result)) {
      const iface = ip.interface !== undefined ? ifaces[ip.interface] : undefined;
      if (!iface?.sandbox) continue;
      out.interfaces[iface.name]!.ipConfigs.push({ ip: ip.ip, address: ip.address, family: ip.family, ...(ip.gateway ? { gateway: ip.gateway } : {}) });
    }
    if (result.dns) out.dns.push(result.dns);
    out.routes.push(...(result.routes ?? []));
  }
  return out;
}

/**
 * The networks a pod joins, as go-cni's CNI object: loopback, then the first maxConfNum networks
 * of the conf dir as eth0, eth1... Immutable: a reload builds a new one, so a setup in flight keeps
 * the networks it started with.
 */
export class Networks {
  readonly attachments: readonly Attachment[];
  /** Files of the conf dir that were skipped, with why. */
  readonly loadErrors: readonly ConfigLoadError[];
  readonly confDir: string;
  readonly cni: CNIConfig;

  constructor(cni: CNIConfig, attachments: readonly Attachment[], confDir: string, loadErrors: readonly ConfigLoadError[] = []) {
    this.cni = cni;
    this.attachments = attachments;
    this.confDir = confDir;
    this.loadErrors = loadErrors;
  }

  static async load(opts: NetworksOptions): Promise<Networks> {
    const cni = new CNIConfig({ path: opts.pluginDirs, cacheDir: opts.cacheDir, ...(opts.exec ? { exec: opts.exec } : {}), ...(opts.observer ? { observer: opts.observer } : {}) });
    const { lists, errors } = await loadConfDir(opts.confDir);
    return Networks.fromLists(cni, lists.slice(0, Math.max(1, opts.maxConfNum ?? 1)), opts, errors);
  }

  static fromLists(cni: CNIConfig, lists: readonly NetworkConfigList[], opts: Pick<NetworksOptions, 'loopback' | 'ifNamePrefix' | 'confDir'>, errors: readonly ConfigLoadError[] = []): Networks {
    const attachments: Attachment[] = [];
    if (opts.loopback ?? true) attachments.push({ list: confListFromBytes(LOOPBACK_CONF, 'builtin:loopback'), ifName: LOOPBACK_IFNAME });
    const prefix = opts.ifNamePrefix ?? DEFAULT_IFNAME_PREFIX;
    lists.forEach((list, i) => attachments.push({ list, ifName: `${prefix}${i}` }));
    return new Networks(cni, attachments, opts.confDir, errors);
  }

  /** The conf-dir networks (not loopback). */
  get networks(): NetworkConfigList[] {
    return this.attachments.filter((a) => a.ifName !== LOOPBACK_IFNAME).map((a) => a.list);
  }

  /** Ready when at least one real network is loaded (go-cni's Status). */
  ready(): boolean {
    return this.networks.length > 0;
  }

  private runtimeConf(id: string, netns: string, ifName: string, opts: NamespaceOptions): RuntimeConf {
    return { containerID: id, netNS: netns, ifName, args: cniArgs(opts.labels), capabilityArgs: capabilityArgs(opts) };
  }

  /**
   * ADD every attachment. On failure throws the first error; attachments that did succeed stay
   * (and are cached), so the caller's teardown removes them.
   */
  async setup(id: string, netns: string, opts: NamespaceOptions = {}): Promise<SetupResult> {
    const run = async (a: Attachment): Promise<{ network: string; ifName: string; result: Result }> => {
      const r: AnyResult = await this.cni.addNetworkList(a.list, this.runtimeConf(id, netns, a.ifName, opts), opts.signal ? { signal: opts.signal } : {});
      return { network: a.list.name, ifName: a.ifName, result: toCurrent(r) };
    };
    const results: SetupResult['results'] = [];
    if (opts.serial) {
      for (const a of this.attachments) results.push(await run(a));
    } else {
      const settled = await Promise.allSettled(this.attachments.map(run));
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
      for (const s of settled) if (s.status === 'fulfilled') results.push(s.value);
    }
    return summarize(results);
  }

  /**
   * DEL every attachment, in reverse, each from the config it was added with when the cache has
   * it. Idempotent: a missing namespace or cache entry is not an error. Tries every attachment and
   * then reports every failure.
   */
  async teardown(id: string, netns: string, opts: NamespaceOptions = {}): Promise<void> {
    const nsPath = netns && (await exists(netns)) ? netns : '';
    const errors: Error[] = [];
    for (const a of [...this.attachments].reverse()) {
      try {
        await delAttachment(this.cni, a, this.runtimeConf(id, nsPath, a.ifName, opts), opts.signal);
      } catch (err) {
        errors.push(err as Error);
      }
    }
    if (errors.length === 1) throw errors[0]!;
    if (errors.length > 1) throw new MultiError(errors);
  }

  /** CHECK every attachment (skipping versions without CHECK). */
  async check(id: string, netns: string, opts: NamespaceOptions = {}): Promise<void> {
    for (const a of this.attachments) {
      const cached = await this.cni.getNetworkListCachedConfig(a.list.name, this.runtimeConf(id, netns, a.ifName, opts));
      const list = cached?.list ?? a.list;
      if (!versionAtLeast(list.cniVersion, '0.4.0')) continue;
      await this.cni.checkNetworkList(list, cached?.rt ?? this.runtimeConf(id, netns, a.ifName, opts), opts.signal ? { signal: opts.signal } : {});
    }
  }
}

/**
 * DEL one attachment. The cached config and args win over the current ones: the spec says the
 * config must not change between ADD and DEL, and a file edited since must not strand an IP.
 */
export async function delAttachment(cni: CNIConfig, a: Attachment, rt: RuntimeConf, signal?: AbortSignal): Promise<void> {
  let cached;
  try {
    cached = await cni.getNetworkListCachedConfig(a.list.name, rt);
  } catch {
    cached = undefined;
  }
  const delRt: RuntimeConf = cached ? { ...cached.rt, netNS: rt.netNS } : rt;
  await cni.delNetworkList(cached?.list ?? a.list, delRt, signal ? { signal } : {});
}

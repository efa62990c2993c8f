import { confListFromBytes, loadConfDir, type ConfigLoadError, type NetworkConfigList } from './config.js';
import { cachedConfigOf, CNIConfig, type CNIConfigOptions, type OpOptions } from './cni.js';
import { resultIPs, type DNS, type Result, type Route } from './result.js';
import type { RuntimeConf } from './runtime-conf.js';

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
      out.interfaces[iface.name].ipConfigs.push({ ip: ip.ip, address: ip.address, family: ip.family, ...(ip.gateway ? { gateway: ip.gateway } : {}) });
    }
    if (result.dns) out.dns.push(result.dns);
    out.routes.push(...(result.routes ?? []));
  }
  return out;
}

/**
 * The networks a pod joins, as go-cni's CNI object: loopback, then the first maxConfNum networks
 * of the conf dir as eth0, eth1... Immutable: a reload builds a new one, so a setup in flight keeps
 * the networks it started with. Setting them up is the engine's (src/engine/engine.ts): podnet
 * has one ADD loop.
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
}

/**
 * DEL one attachment. The cached config and args win over the current ones: the spec says the
 * config must not change between ADD and DEL, and a file edited since must not strand an IP.
 * `opts.cached` is the attachment's cache entry when the caller has read it already.
 */
export async function delAttachment(cni: CNIConfig, a: Attachment, rt: RuntimeConf, signal?: AbortSignal, opts: Omit<OpOptions, 'signal'> = {}): Promise<void> {
  let entry = opts.cached;
  if (!entry) entry = await cni.getCachedAttachment(a.list.name, rt).catch(() => undefined);
  let cached: ReturnType<typeof cachedConfigOf>;
  try {
    cached = entry && cachedConfigOf(entry, rt);
  } catch {
    // An entry whose config does not parse: DEL from the caller's list, as with no entry.
    cached = undefined;
  }
  const delRt: RuntimeConf = cached ? { ...cached.rt, netNS: rt.netNS } : rt;
  await cni.delNetworkList(cached?.list ?? a.list, delRt, { ...opts, ...(entry ? { cached: entry } : {}), ...(signal ? { signal } : {}) });
}

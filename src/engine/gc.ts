import type { Logger } from 'pino';
import { confListFromBytes, confListFromConfBytes, type NetworkConfigList } from '../cni/config.js';
import { errorMessage } from '../cni/errors.js';
import { delAttachment } from '../cni/networks.js';
import { runtimeConfFromCache, type CNIConfig } from '../cni/cni.js';
import type { NetworkManager } from './network-manager.js';
import type { SandboxRecord } from './store.js';
import type { Door } from './types.js';

/** What GC needs to know of the sandboxes. */
export interface GCView {
  validAttachments(): Array<{ containerID: string; ifname: string }>;
  /** Every record: their attachments' networks are GC'ed too, from the bytes they were added with. */
  list(): ReadonlyArray<Readonly<SandboxRecord>>;
  isStaleOwned(id: string, door?: Door): boolean;
}

export interface GCReport {
  /** Sandboxes a runtime's GC no longer listed, torn down and forgotten (CNI door). */
  releasedSandboxes?: number;
  /** Cache entries of ours that were DEL'ed and removed. */
  staleAttachments: number;
  /** Networks that got a CNI GC call (1.1.0 lists). */
  networks: number;
  errors: string[];
}

/**
 * CNI garbage collection. The cache dir may be shared with another runtime (containerd uses
 * /var/lib/cni too), so we only DEL entries that are provably ours and stale: their sandbox
 * record exists and its teardown already succeeded. Everything else in the cache counts as a
 * valid attachment when the plugins are asked to GC, so we never make a plugin forget another
 * runtime's pods. With a door, only that door's sandboxes are released.
 */
export async function collectGarbage(cni: CNIConfig, networks: NetworkManager, sandboxes: GCView, log: Logger, door?: Door): Promise<GCReport> {
  const report: GCReport = { staleAttachments: 0, networks: 0, errors: [] };
  const live = new Set(sandboxes.validAttachments().map((a) => `${a.containerID}\0${a.ifname}`));
  const entries = await cni.getCachedAttachments();
  const valid: Array<{ containerID: string; ifname: string }> = [];
  for (const e of entries) {
    const key = `${e.containerID}\0${e.ifName}`;
    if (!live.has(key) && sandboxes.isStaleOwned(e.containerID, door)) {
      try {
        const list = confListFromConfBytes(e.config, `cache:${e.networkName}`);
        await delAttachment(cni, { list, ifName: e.ifName }, runtimeConfFromCache(e), AbortSignal.timeout(60_000));
        report.staleAttachments++;
      } catch (err) {
        report.errors.push(`DEL of stale ${e.networkName}/${e.containerID}/${e.ifName}: ${errorMessage(err)}`);
        valid.push({ containerID: e.containerID, ifname: e.ifName });
      }
    } else {
      valid.push({ containerID: e.containerID, ifname: e.ifName });
    }
  }
  const inValid = new Set(valid.map((v) => `${v.containerID}\0${v.ifname}`));
  for (const a of sandboxes.validAttachments()) if (!inValid.has(`${a.containerID}\0${a.ifname}`)) valid.push(a);
  for (const list of gcNetworks(networks, sandboxes, entries)) {
    if (list.disableGC || list.cniVersion !== '1.1.0') continue;
    try {
      await cni.gcNetworkList(list, { validAttachments: valid }, { signal: AbortSignal.timeout(60_000) });
      report.networks++;
    } catch (err) {
      report.errors.push(`GC of network ${list.name}: ${errorMessage(err)}`);
    }
  }
  log.info(report, 'cni garbage collection done');
  return report;
}

/**
 * Every network that may hold something, once by name: the conf dirs' networks, then those the
 * sandboxes' attachments were added with (NAD networks included, from the bytes in the record),
 * then those of cache entries.
 */
function gcNetworks(networks: NetworkManager, sandboxes: GCView, entries: ReadonlyArray<{ networkName: string; config: Buffer }>): NetworkConfigList[] {
  const byName = new Map<string, NetworkConfigList>();
  const add = (name: string, load: () => NetworkConfigList): void => {
    if (byName.has(name)) return;
    try {
      byName.set(name, load());
    } catch {
      // An unreadable config has nothing to GC with.
    }
  };
  for (const nets of networks.allNetworks()) for (const { list } of nets.attachments) add(list.name, () => list);
  for (const rec of sandboxes.list()) {
    for (const a of rec.attachments) add(a.network, () => confListFromBytes(Buffer.from(a.config, 'base64'), `sandbox:${rec.id}/${a.ifName}`));
  }
  for (const e of entries) add(e.networkName, () => confListFromConfBytes(e.config, `cache:${e.networkName}`));
  return [...byName.values()];
}

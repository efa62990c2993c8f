import type { Logger } from 'pino';
import { confListFromBytes, confListFromConfBytes, type NetworkConfigList } from '../cni/config.js';
import { errorMessage } from '../cni/errors.js';
import { delAttachment } from '../cni/networks.js';
import { runtimeConfFromCache, type CNIConfig } from '../cni/cni.js';
import type { NetworkManager } from './network-manager.js';
import type { SandboxService } from './sandbox-service.js';

export interface GCReport {
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
 * runtime's pods.
 */
export async function collectGarbage(cni: CNIConfig, networks: NetworkManager, sandboxes: SandboxService, log: Logger): Promise<GCReport> {
  const report: GCReport = { staleAttachments: 0, networks: 0, errors: [] };
  const live = new Set(sandboxes.validAttachments().map((a) => `${a.containerID}\0${a.ifname}`));
  const entries = await cni.getCachedAttachments();
  const valid: Array<{ containerID: string; ifname: string }> = [];
  for (const e of entries) {
    const key = `${e.containerID}\0${e.ifName}`;
    if (!live.has(key) && sandboxes.isStaleOwned(e.containerID)) {
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
function gcNetworks(networks: NetworkManager, sandboxes: SandboxService, entries: ReadonlyArray<{ networkName: string; config: Buffer }>): NetworkConfigList[] {
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
  for (const rec of sandboxes.records()) {
    for (const a of rec.attachments) add(a.network, () => confListFromBytes(Buffer.from(a.config, 'base64'), `sandbox:${rec.id}/${a.ifName}`));
  }
  for (const e of entries) add(e.networkName, () => confListFromConfBytes(e.config, `cache:${e.networkName}`));
  return [...byName.values()];
}

/**
 * Sandboxes whose teardown failed (a Stop, or the rollback of a failed RunPodSandbox) get their
 * teardown again, as a Stop would, so an IP is released once whatever broke the DEL is fixed. Runs
 * before GC proper: it takes the ADD/DEL lock that GC holds exclusively.
 */
export async function retryFailedTeardowns(sandboxes: SandboxService, log: Logger): Promise<number> {
  let done = 0;
  for (const rec of sandboxes.records()) {
    if (rec.phase !== 'notready' || !rec.lastError) continue;
    try {
      await sandboxes.stopPodSandbox({ podSandboxId: rec.id }, { signal: AbortSignal.timeout(60_000) });
      done++;
      log.info({ sandbox: rec.id }, 'retried a failed teardown: done');
    } catch (err) {
      log.warn({ sandbox: rec.id, err: errorMessage(err) }, 'retried a failed teardown: still failing; will retry');
    }
  }
  return done;
}

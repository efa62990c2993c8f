import { summarize, type SetupResult } from '../cni/networks.js';
import type { Result } from '../cni/result.js';
import type { IPPref, NetworkStatusEntry } from './types.js';
import type { AttachmentRecord, IPRecord, SandboxRecord } from './store.js';

/** The attachments the pod has now: those set up with it, and hot-plugged ones whose attach finished (not being removed). */
export function liveAttachments(rec: Readonly<SandboxRecord>): ReadonlyArray<Readonly<AttachmentRecord>> {
  return rec.attachments.filter((a) => a.phase === undefined || a.phase === 'ready');
}

/** Multus's network-status list: every attachment but loopback, the cluster network marked default. */
export function networkStatus(rec: Readonly<SandboxRecord>): NetworkStatusEntry[] {
  const movedDefault = rec.attachments.some((a) => a.defaultRoute);
  const live = new Set(liveAttachments(rec).map((a) => a.ifName));
  return rec.results
    .filter((r) => r.ifName !== 'lo' && (live.has(r.ifName) || !rec.attachments.some((a) => a.ifName === r.ifName)))
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

/**
 * Orders the cluster interface's IPs as the CRI wants them: the preferred family first
 * (ip_pref "ipv4"/"ipv6"), or the plugins' order ("cni"); the rest become additional_ips.
 */
export function selectPodIPs(result: SetupResult, pref: IPPref, ifName: string): IPRecord[] {
  const iface = result.interfaces[ifName];
  const ips = (iface?.ipConfigs ?? []).map((c) => ({ ip: c.ip, ifName, v4: c.family === 4 }));
  if (pref !== 'cni') {
    const wantV4 = pref === 'ipv4';
    const i = ips.findIndex((x) => x.v4 === wantV4);
    if (i > 0) ips.unshift(...ips.splice(i, 1));
  }
  return ips.map(({ ip, ifName: name }) => ({ ip, ifName: name }));
}

import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { CNIConfig, runtimeConfFromCache } from '../cni/cni.js';
import { confListFromConfBytes, loadConfDir, type NetworkConfigList } from '../cni/config.js';
import { errorMessage } from '../cni/errors.js';
import { isObject } from '../util/json.js';
import { delAttachment } from '../cni/networks.js';
import { NetnsManager, nsfsMounts } from '../netns/netns.js';
import { clip } from '../util/quote.js';
import { NetnsLedger, SandboxStore } from '../engine/store.js';

export interface DoctorOptions {
  stateDir: string;
  netnsDir: string;
  cacheDir: string;
  confDir: string;
  binDirs: string[];
}

/**
 * netns: a namespace of ours no sandbox owns. cache: a result cache entry of no sandbox whose
 * namespace is gone. ipam: a host-local allocation with neither. link: a veth on one of the conf
 * dir's bridges with no pod behind it. bridge: such a bridge with no ports and nobody using it
 * (informational only: see Leak.informational). teardown: a sandbox whose DEL failed and that
 * podnetd keeps, and retries, until a DEL succeeds (informational: the daemon owns the retry).
 */
export type LeakKind = 'netns' | 'cache' | 'ipam' | 'link' | 'bridge' | 'teardown';

export interface Leak {
  kind: LeakKind;
  /** A path (netns file, cache file, allocation file) or, for link and bridge, the interface name. */
  path: string;
  containerID: string;
  detail: string;
  /** link: the interface index when found; --fix deletes only that very interface. */
  ifindex?: number;
  /**
   * Reported for the operator's information, not a leak: --fix leaves it alone and it does not
   * make the exit status 1. An idle bridge of a configured network is where the next pod goes
   * (the bridge plugin reuses it, and other runtimes on the node expect it to stay).
   */
  informational?: boolean;
}

/** Leaks --fix acts on and the exit status counts. */
export function actionable(leaks: readonly Leak[]): Leak[] {
  return leaks.filter((l) => !l.informational);
}

/** host-local's default data dir, when a config names none. */
const HOST_LOCAL_DEFAULT_DIR = '/var/lib/cni/networks';
/** The bridge plugin's bridge when a config names none. */
const BRIDGE_DEFAULT_NAME = 'cni0';

/** host-local allocation dirs of the networks: network name → dir. */
function hostLocalDirs(lists: readonly NetworkConfigList[]): Map<string, string> {
  const dirs = new Map<string, string>();
  for (const list of lists) {
    for (const p of list.plugins) {
      const ipam = p.raw['ipam'];
      if (!isObject(ipam) || ipam['type'] !== 'host-local') continue;
      const dataDir = typeof ipam['dataDir'] === 'string' ? ipam['dataDir'] : HOST_LOCAL_DEFAULT_DIR;
      dirs.set(list.name, join(dataDir, list.name));
    }
  }
  return dirs;
}

/** The bridges `bridge` plugins of these networks use: bridge name → network names. */
function bridgeNames(lists: readonly NetworkConfigList[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const list of lists) {
    for (const p of list.plugins) {
      if (p.type !== 'bridge') continue;
      const name = typeof p.raw['bridge'] === 'string' && p.raw['bridge'] !== '' ? p.raw['bridge'] : BRIDGE_DEFAULT_NAME;
      out.set(name, [...(out.get(name) ?? []), list.name]);
    }
  }
  return out;
}

/** Bridge names in config bytes from a sandbox record or a cache entry; none if unreadable. */
function bridgesOfConfig(bytes: Buffer): string[] {
  try {
    return [...bridgeNames([confListFromConfBytes(bytes)]).keys()];
  } catch {
    return [];
  }
}

// ---- links (iproute2 JSON) ----------------------------------------------------------------------

/** The fields of one `ip -d -j link show` entry that the doctor reads. */
interface IpLink {
  ifindex: number;
  ifname: string;
  /** linkinfo.info_kind: "veth", "bridge"...; '' when ip reports none. */
  kind: string;
  master?: string;
  /** The peer's name, when the peer is in the same namespace; null when it has none (@NONE). */
  link?: string | null;
  /** The peer's ifindex in its own namespace, when that is another namespace. */
  linkIndex?: number;
  /** Set when the peer is in another namespace: that namespace's id as seen from this one. */
  linkNetnsid?: number;
}

function parseIpLinks(stdout: string): IpLink[] {
  const raw: unknown = JSON.parse(stdout.trim() || '[]');
  if (!Array.isArray(raw)) throw new Error('ip -j link show did not print a JSON list');
  const out: IpLink[] = [];
  for (const l of raw as unknown[]) {
    if (!isObject(l) || typeof l['ifindex'] !== 'number' || typeof l['ifname'] !== 'string') continue;
    const info = l['linkinfo'];
    const link: IpLink = { ifindex: l['ifindex'], ifname: l['ifname'], kind: isObject(info) && typeof info['info_kind'] === 'string' ? info['info_kind'] : '' };
    if (typeof l['master'] === 'string') link.master = l['master'];
    if ('link' in l && (typeof l['link'] === 'string' || l['link'] === null)) link.link = l['link'];
    if (typeof l['link_index'] === 'number') link.linkIndex = l['link_index'];
    if (typeof l['link_netnsid'] === 'number') link.linkNetnsid = l['link_netnsid'];
    out.push(link);
  }
  return out;
}

/** `ip -d -j link show [dev NAME]` in the host's namespace or in nsPath's. */
async function ipLinks(nsPath?: string, dev?: string): Promise<{ links: IpLink[]; missing: boolean }> {
  const args = ['-d', '-j', 'link', 'show', ...(dev ? ['dev', dev] : [])];
  const r = nsPath ? await execa('nsenter', [`--net=${nsPath}`, 'ip', ...args], { reject: false }) : await execa('ip', args, { reject: false });
  if (r.exitCode !== 0) {
    const stderr = String(r.stderr).trim();
    if (dev && /does not exist|Cannot find device/.test(stderr)) return { links: [], missing: true };
    throw new Error(`${nsPath ? `nsenter --net=${nsPath} ` : ''}ip ${args.join(' ')}: ${stderr || `exit ${String(r.exitCode)}`}`);
  }
  return { links: parseIpLinks(String(r.stdout)), missing: false };
}

/** Runs fn on every item, at most `limit` at a time. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * The veth pairs whose far end is in one of these namespaces, as "<host ifindex>:<peer ifindex>"
 * keys (seen from inside: the peer's link_index is the host end). Each namespace is entered once
 * (bind mounts of one namespace share its inode); paths that are not network namespaces, or are
 * gone, are skipped.
 */
async function vethPairsIn(paths: Iterable<string>): Promise<Set<string>> {
  const unique = new Map<string, string>();
  for (const p of paths) {
    const st = await stat(p).catch(() => undefined);
    if (st && !unique.has(`${st.dev}:${st.ino}`)) unique.set(`${st.dev}:${st.ino}`, p);
  }
  const pairs = new Set<string>();
  await forEachLimited([...unique.values()], 8, async (p) => {
    const links = await ipLinks(p).then((r) => r.links, () => [] as IpLink[]);
    for (const l of links) if (l.kind === 'veth' && l.linkIndex !== undefined) pairs.add(`${l.linkIndex}:${l.ifindex}`);
  });
  return pairs;
}

interface LinkScanInput {
  lists: readonly NetworkConfigList[];
  /** Bridge names that a sandbox record or a cache entry was set up with. */
  bridgesInUse: ReadonlySet<string>;
  /** Every namespace a pod may live in: sandboxes', cache entries', every nsfs mount. */
  liveNamespaces: Iterable<string>;
  /**
   * Runtime-owned namespaces (CNI door) of live sandboxes that cannot be opened from here (the
   * runtime mounts them in a mount namespace of its own): a veth whose peer is in an unknown
   * namespace may be theirs, so it is only listed, never fixed.
   */
  invisibleRuntimeNamespaces: number;
}

/**
 * Ports of the conf dir's bridges with no pod behind them, and idle bridges. Only bridges that a
 * `bridge` plugin config of the conf dir names, and only veths enslaved to them, are looked at.
 * A veth is leaked when its peer is in the host namespace and enslaved nowhere, or gone, or in a
 * namespace that is neither a sandbox's, nor a cache entry's, nor bind-mounted anywhere (another
 * runtime's pods, even mid-ADD, live in mounted namespaces and are left alone).
 */
async function findLinkLeaks(input: LinkScanInput): Promise<Leak[]> {
  const bridges = bridgeNames(input.lists);
  if (bridges.size === 0) return [];
  const { links } = await ipLinks();
  const byName = new Map(links.map((l) => [l.ifname, l]));
  const leaks: Leak[] = [];
  const farSide: Array<{ veth: IpLink; bridge: string }> = [];
  for (const [bridge, networks] of bridges) {
    if (byName.get(bridge)?.kind !== 'bridge') continue;
    const ports = links.filter((l) => l.master === bridge);
    for (const veth of ports) {
      if (veth.kind !== 'veth') continue;
      if (veth.linkNetnsid !== undefined) {
        farSide.push({ veth, bridge });
        continue;
      }
      const peer = typeof veth.link === 'string' ? byName.get(veth.link) : undefined;
      // A peer enslaved to something else (another bridge, a bond) is an interconnect someone built.
      if (peer?.master !== undefined) continue;
      const where = peer ? `is in the host namespace (${peer.ifname}), enslaved nowhere` : 'is gone';
      leaks.push({ kind: 'link', path: veth.ifname, containerID: '', ifindex: veth.ifindex, detail: `port of bridge ${bridge}: its veth peer ${where}; no pod behind it` });
    }
    if (ports.length === 0 && !input.bridgesInUse.has(bridge)) {
      leaks.push({
        kind: 'bridge',
        path: bridge,
        containerID: '',
        informational: true,
        detail: `bridge of ${networks.join(', ')}: no ports and no sandbox or cache entry uses it (left in place: the next pod reuses it)`,
      });
    }
  }
  if (farSide.length > 0) {
    const pairs = await vethPairsIn(input.liveNamespaces);
    for (const { veth, bridge } of farSide) {
      if (pairs.has(`${veth.ifindex}:${veth.linkIndex ?? -1}`)) continue;
      const unsure = input.invisibleRuntimeNamespaces > 0;
      leaks.push({
        kind: 'link',
        path: veth.ifname,
        containerID: '',
        ifindex: veth.ifindex,
        ...(unsure ? { informational: true } : {}),
        detail:
          `port of bridge ${bridge}: its veth peer is in namespace nsid ${veth.linkNetnsid ?? '?'}, which is no sandbox's, no cache entry's and mounted nowhere` +
          (unsure ? ` visible here; left alone: the namespaces of ${input.invisibleRuntimeNamespaces} runtime-owned sandbox(es) cannot be opened from here (run doctor where the runtime's mounts are)` : ''),
      });
    }
  }
  return leaks;
}

// ---- find / fix ---------------------------------------------------------------------------------

/**
 * What is leaked: our namespaces no sandbox owns; cache entries of no sandbox whose namespace is
 * gone (nobody can be using them); host-local allocations whose container has neither a sandbox
 * nor a cache entry; veths of the conf dir's bridges with no pod behind them. Idle bridges are
 * listed as informational.
 */
export async function findLeaks(o: DoctorOptions): Promise<Leak[]> {
  const records = await SandboxStore.readAll(o.stateDir);
  const ids = new Set(records.map((r) => r.id));
  // Every sandbox's namespace, ours or the runtime's: none of them is a leak.
  const owned = new Set(records.map((r) => r.netnsPath).filter(Boolean));
  const netns = new NetnsManager(o.netnsDir);
  const { lists } = await loadConfDir(o.confDir);
  const leaks: Leak[] = [];
  for (const r of records) {
    if (!r.lastError) continue;
    leaks.push({
      kind: 'teardown',
      path: r.id,
      containerID: r.id,
      informational: true,
      detail: `${r.metadata.namespace}/${r.metadata.name}: DEL failed (${clip(r.lastError, 256)}); podnetd keeps the sandbox ${r.phase} and retries on Stop, Remove and GC`,
    });
  }
  for (const path of await new NetnsLedger(o.stateDir).list()) {
    if (!owned.has(path)) leaks.push({ kind: 'netns', path, containerID: '', detail: 'network namespace of ours that no sandbox owns' });
  }
  const cni = new CNIConfig({ path: o.binDirs, cacheDir: o.cacheDir });
  const cached = await cni.getCachedAttachments();
  const cachedIDs = new Set(cached.map((c) => c.containerID));
  for (const c of cached) {
    if (ids.has(c.containerID)) continue;
    if (c.netns && (await netns.exists(c.netns))) continue;
    leaks.push({ kind: 'cache', path: cni.cache.path(c.networkName, c.containerID, c.ifName), containerID: c.containerID, detail: `${c.networkName}/${c.ifName}: no sandbox, namespace ${c.netns || '(none)'} gone` });
  }
  for (const [network, dir] of hostLocalDirs(lists)) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (isIP(name) === 0) continue;
      const file = join(dir, name);
      const [id = '', ifName = ''] = (await readFile(file, 'utf8').catch(() => '')).split(/\r?\n/);
      if (!id || ids.has(id) || cachedIDs.has(id)) continue;
      leaks.push({ kind: 'ipam', path: file, containerID: id, detail: `${network}: ${name} held by ${id}${ifName ? `/${ifName}` : ''} with no sandbox and no cache entry` });
    }
  }
  const bridgesInUse = new Set<string>();
  for (const r of records) for (const a of r.attachments) bridgesOfConfig(Buffer.from(a.config, 'base64')).forEach((b) => bridgesInUse.add(b));
  for (const c of cached) bridgesOfConfig(c.config).forEach((b) => bridgesInUse.add(b));
  const liveNamespaces = new Set<string>([...owned, ...cached.flatMap((c) => (c.netns ? [c.netns] : [])), ...(await nsfsMounts())]);
  let invisibleRuntimeNamespaces = 0;
  for (const r of records) if (r.netnsOwner === 'runtime' && r.netnsPath && r.phase !== 'notready' && !(await netns.exists(r.netnsPath))) invisibleRuntimeNamespaces++;
  leaks.push(...(await findLinkLeaks({ lists, bridgesInUse, liveNamespaces, invisibleRuntimeNamespaces })));
  return leaks;
}

/** Deletes a leaked veth (both ends go), if it is still the interface the scan found. */
async function removeLink(leak: Leak): Promise<void> {
  const { links, missing } = await ipLinks(undefined, leak.path);
  // Gone already: e.g. its namespace was removed by an earlier fix.
  if (missing || links.length === 0) return;
  if (leak.ifindex !== undefined && links[0].ifindex !== leak.ifindex) {
    throw new Error(`not deleted: ${leak.path} is now another interface (index ${links[0].ifindex}, was ${leak.ifindex})`);
  }
  const r = await execa('ip', ['link', 'del', 'dev', leak.path], { reject: false });
  if (r.exitCode !== 0 && !/does not exist|Cannot find device/.test(String(r.stderr))) {
    throw new Error(`ip link del dev ${leak.path}: ${String(r.stderr).trim()}`);
  }
}

/**
 * Releases each leak: DEL from the cache first (so plugins undo what they did), then remove.
 * Informational entries (idle bridges) are left alone.
 */
export async function fixLeaks(leaks: Leak[], o: DoctorOptions): Promise<string[]> {
  const errors: string[] = [];
  const cni = new CNIConfig({ path: o.binDirs, cacheDir: o.cacheDir });
  const netns = new NetnsManager(o.netnsDir);
  const ledger = new NetnsLedger(o.stateDir);
  // Read again at fix time: a namespace a runtime owns (CNI door) is never unmounted or removed,
  // whatever the scan found (containerd's cni-<uuid> live in the same dir as ours).
  const runtimeOwned = new Set((await SandboxStore.readAll(o.stateDir)).filter((r) => r.netnsOwner === 'runtime').map((r) => r.netnsPath));
  for (const leak of actionable(leaks)) {
    try {
      if (leak.kind === 'netns') {
        if (runtimeOwned.has(leak.path)) throw new Error('not removed: the container runtime owns this namespace (a sandbox of the CNI door)');
        await netns.remove(leak.path);
        await ledger.remove(leak.path);
      } else if (leak.kind === 'cache') {
        const entry = (await cni.getCachedAttachments(leak.containerID)).find((c) => cni.cache.path(c.networkName, c.containerID, c.ifName) === leak.path);
        if (entry) {
          const rt = { ...runtimeConfFromCache(entry), netNS: '' };
          await delAttachment(cni, { list: confListFromConfBytes(entry.config, leak.path), ifName: entry.ifName }, rt, AbortSignal.timeout(60_000));
        }
      } else if (leak.kind === 'link') {
        await removeLink(leak);
      } else if (leak.kind === 'ipam') {
        await rm(leak.path, { force: true });
      }
    } catch (err) {
      errors.push(`${leak.kind} ${leak.path}: ${errorMessage(err)}`);
    }
  }
  return errors;
}

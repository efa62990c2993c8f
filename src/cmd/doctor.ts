import { readdir, readFile, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { CNIConfig, runtimeConfFromCache } from '../cni/cni.js';
import { confListFromBytes, loadConfDir } from '../cni/config.js';
import { errorMessage } from '../cni/errors.js';
import { isObject } from '../cni/json.js';
import { delAttachment } from '../cni/networks.js';
import { NetnsManager } from '../netns/netns.js';
import { NetnsLedger, SandboxStore } from '../cri/store.js';

export interface DoctorOptions {
  stateDir: string;
  netnsDir: string;
  cacheDir: string;
  confDir: string;
  binDirs: string[];
}

export type LeakKind = 'netns' | 'cache' | 'ipam';

export interface Leak {
  kind: LeakKind;
  /** A path (netns file, cache file, allocation file). */
  path: string;
  containerID: string;
  detail: string;
}

/** host-local's default data dir, when a config names none. */
const HOST_LOCAL_DEFAULT_DIR = '/var/lib/cni/networks';

/** host-local allocation dirs of the networks in the conf dir: network name → dir. */
async function hostLocalDirs(confDir: string): Promise<Map<string, string>> {
  const dirs = new Map<string, string>();
  const { lists } = await loadConfDir(confDir);
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

/**
 * What is leaked: our namespaces no sandbox owns; cache entries of no sandbox whose namespace is
 * gone (nobody can be using them); host-local allocations whose container has neither a sandbox
 * nor a cache entry.
 */
export async function findLeaks(o: DoctorOptions): Promise<Leak[]> {
  const records = await SandboxStore.readAll(o.stateDir);
  const ids = new Set(records.map((r) => r.id));
  const owned = new Set(records.map((r) => r.netnsPath).filter(Boolean));
  const netns = new NetnsManager(o.netnsDir);
  const leaks: Leak[] = [];
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
  for (const [network, dir] of await hostLocalDirs(o.confDir)) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (isIP(name) === 0) continue;
      const file = join(dir, name);
      const [id = '', ifName = ''] = (await readFile(file, 'utf8').catch(() => '')).split(/\r?\n/);
      if (!id || ids.has(id) || cachedIDs.has(id)) continue;
      leaks.push({ kind: 'ipam', path: file, containerID: id, detail: `${network}: ${name} held by ${id}${ifName ? `/${ifName}` : ''} with no sandbox and no cache entry` });
    }
  }
  return leaks;
}

/** Releases each leak: DEL from the cache first (so plugins undo what they did), then remove. */
export async function fixLeaks(leaks: Leak[], o: DoctorOptions): Promise<string[]> {
  const errors: string[] = [];
  const cni = new CNIConfig({ path: o.binDirs, cacheDir: o.cacheDir });
  const netns = new NetnsManager(o.netnsDir);
  const ledger = new NetnsLedger(o.stateDir);
  for (const leak of leaks) {
    try {
      if (leak.kind === 'netns') {
        await netns.remove(leak.path);
        await ledger.remove(leak.path);
      } else if (leak.kind === 'cache') {
        const entry = (await cni.getCachedAttachments(leak.containerID)).find((c) => cni.cache.path(c.networkName, c.containerID, c.ifName) === leak.path);
        if (entry) {
          const rt = { ...runtimeConfFromCache(entry), netNS: '' };
          await delAttachment(cni, { list: confListFromBytes(entry.config, leak.path), ifName: entry.ifName }, rt, AbortSignal.timeout(60_000));
        }
      } else {
        await rm(leak.path, { force: true });
      }
    } catch (err) {
      errors.push(`${leak.kind} ${leak.path}: ${errorMessage(err)}`);
    }
  }
  return errors;
}

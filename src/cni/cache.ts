import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isObject, isStringArray, parseJSON, type JSONObject } from './json.js';
import { isTempName, removeTempFiles, unlinkIfExists, writeFileAtomic } from '../util/write-atomic.js';

export const CACHE_KIND = 'cniCacheV1';

/**
 * One cached attachment, in libcni's on-disk shape (`kind: cniCacheV1`), so that Go tools
 * (cnitool, containerd) and podnet can DEL each other's attachments.
 */
export interface CachedAttachment {
  containerID: string;
  ifName: string;
  networkName: string;
  /** The network config list bytes the attachment was added with (base64 on disk, as Go's []byte). */
  config: Buffer;
  netns?: string;
  cniArgs?: Array<[string, string]>;
  capabilityArgs?: Record<string, unknown>;
  /** The final result of ADD, as the plugin chain returned it. */
  result?: JSONObject;
}

export function cacheFilePath(cacheDir: string, network: string, containerID: string, ifName: string): string {
  if (!network || !containerID || !ifName) {
    throw new Error(`cache file path requires network name ("${network}"), container ID ("${containerID}") and interface name ("${ifName}")`);
  }
  return join(cacheDir, 'results', `${network}-${containerID}-${ifName}`);
}

export function encodeCacheEntry(a: CachedAttachment): Buffer {
  // Field names and order follow libcni's cachedInfo; omitempty fields are left out when empty.
  const obj: Record<string, unknown> = {
    kind: CACHE_KIND,
    containerId: a.containerID,
    config: a.config.toString('base64'),
    ifName: a.ifName,
    networkName: a.networkName,
  };
  if (a.netns) obj['netns'] = a.netns;
  if (a.cniArgs && a.cniArgs.length > 0) obj['cniArgs'] = a.cniArgs;
  if (a.capabilityArgs && Object.keys(a.capabilityArgs).length > 0) obj['capabilityArgs'] = a.capabilityArgs;
  if (a.result) obj['result'] = a.result;
  return Buffer.from(JSON.stringify(obj));
}

/** Parses a cache file; undefined for anything that is not a cniCacheV1 entry (libcni skips those too). */
export function decodeCacheEntry(bytes: Buffer): CachedAttachment | undefined {
  let obj: unknown;
  try {
    obj = parseJSON(bytes);
  } catch {
    return undefined;
  }
  if (!isObject(obj) || obj['kind'] !== CACHE_KIND) return undefined;
  const { containerId, ifName, networkName, config, netns, cniArgs, capabilityArgs, result } = obj;
  if (typeof containerId !== 'string' || typeof ifName !== 'string' || typeof networkName !== 'string') return undefined;
  const entry: CachedAttachment = {
    containerID: containerId,
    ifName,
    networkName,
    config: typeof config === 'string' ? Buffer.from(config, 'base64') : Buffer.alloc(0),
  };
  if (typeof netns === 'string' && netns) entry.netns = netns;
  if (Array.isArray(cniArgs) && cniArgs.every((p) => isStringArray(p) && p.length === 2)) {
    entry.cniArgs = cniArgs.map((p) => [(p as string[])[0], (p as string[])[1]]);
  }
  if (isObject(capabilityArgs)) entry.capabilityArgs = capabilityArgs;
  if (isObject(result)) entry.result = result;
  return entry;
}

/** The result cache of one cache dir. */
export class ResultCache {
  constructor(readonly cacheDir: string) {}

  path(network: string, containerID: string, ifName: string): string {
    return cacheFilePath(this.cacheDir, network, containerID, ifName);
  }

  /**
   * Atomic, the data synced, the dir not: libcni syncs nothing here. An entry a power cut loses
   * costs nothing podnet needs (its records hold each attachment's config, args and result, and
   * a teardown falls back to them); what the dir sync would cost is on the Run path.
   */
  async put(a: CachedAttachment): Promise<void> {
    await writeFileAtomic(this.path(a.networkName, a.containerID, a.ifName), encodeCacheEntry(a), { syncDir: false });
  }

  async get(network: string, containerID: string, ifName: string): Promise<CachedAttachment | undefined> {
    const bytes = await this.read(network, containerID, ifName);
    return bytes && decodeCacheEntry(bytes);
  }

  /** The file as it is, whatever it holds (a libcni before cniCacheV1 wrote the bare result); undefined if there is none. */
  async read(network: string, containerID: string, ifName: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.path(network, containerID, ifName));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async delete(network: string, containerID: string, ifName: string): Promise<void> {
    await unlinkIfExists(this.path(network, containerID, ifName));
  }

  /**
   * Temp files of cache writes a crash interrupted. Only writeFileAtomic makes this name pattern
   * (libcni writes cache files in place), so this is safe in a cache dir shared with containerd.
   */
  removeTempFiles(): Promise<void> {
    return removeTempFiles(join(this.cacheDir, 'results'));
  }

  /** Every attachment in the cache, optionally only a container's, sorted by file name like libcni. */
  async list(containerID?: string): Promise<CachedAttachment[]> {
    const dir = join(this.cacheDir, 'results');
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: CachedAttachment[] = [];
    for (const name of names) {
      if (containerID && !name.includes(`-${containerID}-`)) continue;
      if (isTempName(name)) continue;
      let entry: CachedAttachment | undefined;
      try {
        entry = decodeCacheEntry(await readFile(join(dir, name)));
      } catch {
        continue;
      }
      if (!entry || !entry.ifName || !entry.networkName) continue;
      if (containerID && entry.containerID !== containerID) continue;
      // libcni reads an entry by the name its fields give; a file under another name (a copy, a
      // stray write) is not the entry of those fields.
      if (name !== `${entry.networkName}-${entry.containerID}-${entry.ifName}`) continue;
      out.push(entry);
    }
    return out;
  }
}

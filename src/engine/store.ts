import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isTempName, removeTempFiles, unlinkIfExists, writeFileAtomic } from '../util/write-atomic.js';
import type { CRIFacts, Door, NetnsOwner } from './types.js';

/**
 * Where a sandbox is in its life. `creating` and `stopping` are written before the network work
 * starts, so a crash in the middle leaves a record that says what to finish.
 */
export type SandboxPhase = 'creating' | 'ready' | 'stopping' | 'notready';

export interface PodMetadata {
  name: string;
  namespace: string;
  uid: string;
  /** The CRI's attempt; absent for pods of the CNI door (CNI_ARGS carry none). */
  attempt?: number;
}

/** One network the sandbox joined (or was joining), with the config bytes it was added with. */
export interface AttachmentRecord {
  network: string;
  ifName: string;
  /** base64 of the network config list bytes: DEL runs from these, never from the current file. */
  config: string;
  /** Per-attachment timeout, when the attachment asked for one. */
  timeoutMs?: number;
  /** Extra capability args for this attachment only (Multus-style requests). */
  capabilityArgs?: Record<string, unknown>;
  /** Extra CNI_ARGS for this attachment only. */
  cniArgs?: Array<[string, string]>;
  /** An extra network from the networks annotation (not the cluster network or loopback). */
  secondary?: boolean;
  /** The attachment's name as the user wrote it (namespace/name), for network-status. */
  ref?: string;
  /** Gateways to move the pod's default route to (Multus "default-route"). */
  defaultRoute?: string[];
  /**
   * Set when a RunPodSandbox failed: the plugins whose ADD returned (see rollback.ts). Absent
   * means unknown, which counts as "may hold resources".
   */
  addedPlugins?: string[];
  /**
   * Where a hot-plug attach or detach (hotplug.ts) of this attachment is, written before its
   * plugins run: `adding` (ADD may be running), `ready`, `removing` (DEL may be running, or failed
   * and is retried by the next detach, Stop or GC). Absent: set up with the pod, and live.
   */
  phase?: AttachmentPhase;
  /** Why the last hot-plug DEL of this attachment failed (phase `removing`). */
  error?: string;
}

export type AttachmentPhase = 'adding' | 'ready' | 'removing';

export interface IPRecord {
  ip: string;
  ifName: string;
}

export interface PluginTiming {
  network: string;
  ifName?: string;
  plugin: string;
  verb: string;
  ms: number;
  error?: string;
}

/** The record of one pod's networks: what was set up, and everything its teardown needs. */
export interface SandboxRecord {
  id: string;
  /** The front door the pod came through; a door's GC only ever touches its own pods. */
  door: Door;
  phase: SandboxPhase;
  metadata: PodMetadata;
  runtimeHandler: string;
  /** The network chosen by name (NetworkSelector `network`), when it was. */
  network?: string;
  hostNetwork: boolean;
  netnsPath: string;
  /** podnet: made and removed by podnet; runtime: the runtime's, never created, unmounted or removed by podnet. */
  netnsOwner: NetnsOwner;
  /** The cluster network's interface: its IPs are the pod's IPs. */
  clusterIfName: string;
  attachments: AttachmentRecord[];
  /** CNI_ARGS and capability args every attachment got, kept for DEL. */
  cniArgs: Array<[string, string]>;
  capabilityArgs: Record<string, unknown>;
  /** Primary first. */
  ips: IPRecord[];
  /** Per-attachment results in current CNI form, for verbose status. */
  results: Array<{ network: string; ifName: string; result: unknown }>;
  timings: PluginTiming[];
  /** The last teardown failure; the next Stop/Remove retries. */
  lastError?: string;
  /**
   * Recovery found the namespace gone and marked the pod notready without a teardown: the next
   * teardown still DELs (with an empty CNI_NETNS), so IPAM is released.
   */
  teardownPending?: boolean;
  /** The CRI door's own facts (never read by the engine). */
  cri?: CRIFacts;
  version: 2;
}

/** A record as podnet before the engine wrote it (version 1): CRI-only, its facts at the top level. */
interface RecordV1 extends Omit<SandboxRecord, 'version' | 'door' | 'netnsOwner' | 'clusterIfName' | 'cri' | 'network' | 'teardownPending'> {
  version: 1;
  config: Record<string, unknown>;
  createdAt: string;
}

/** Reads a record of any version as the current one: old state dirs keep working after an upgrade. */
export function upgradeRecord(raw: SandboxRecord | RecordV1): SandboxRecord {
  if (raw.version !== 1) return raw;
  const { config, createdAt, version: _v1, ...rest } = raw;
  return { ...rest, door: 'cri', netnsOwner: 'podnet', clusterIfName: 'eth0', cri: { config, createdAt }, version: 2 };
}

function parseRecord(text: string): SandboxRecord {
  return upgradeRecord(JSON.parse(text) as SandboxRecord | RecordV1);
}

export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

/** CNI's container id syntax (a CRI sandbox id is 64 hex digits), bounded so `<id>.json` is a file name. */
const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export function isRecordID(id: string): boolean {
  return ID_RE.test(id);
}

/**
 * The sandbox records: one JSON file per sandbox, each written atomically (temp, fsync, rename,
 * dir fsync), and an in-memory index for lookups.
 */
export class SandboxStore {
  private readonly dir: string;
  private readonly byId = new Map<string, SandboxRecord>();

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'sandboxes');
  }

  /** Reads every record; unreadable files are returned by name so the caller can report them. */
  async load(): Promise<{ records: SandboxRecord[]; corrupt: string[] }> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const corrupt: string[] = [];
    const names = await readdir(this.dir);
    await Promise.all(
      names.map(async (name) => {
        const file = join(this.dir, name);
        if (isTempName(name)) {
          // A write that never got renamed: the crash happened before the record existed.
          await unlinkIfExists(file);
          return;
        }
        if (!name.endsWith('.json') || !ID_RE.test(name.slice(0, -5))) return;
        try {
          const rec = parseRecord(await readFile(file, 'utf8'));
          if (rec.id !== name.slice(0, -5)) throw new Error('id mismatch');
          this.byId.set(rec.id, rec);
        } catch {
          corrupt.push(file);
        }
      }),
    );
    return { records: [...this.byId.values()], corrupt };
  }

  /** Reads the records without touching anything: for tools running beside a live daemon. */
  static async readAll(stateDir: string): Promise<SandboxRecord[]> {
    const dir = join(stateDir, 'sandboxes');
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: SandboxRecord[] = [];
    for (const name of names.sort()) {
      if (!name.endsWith('.json') || !ID_RE.test(name.slice(0, -5))) continue;
      try {
        out.push(parseRecord(await readFile(join(dir, name), 'utf8')));
      } catch {
        // being replaced right now, or corrupt: skip
      }
    }
    return out;
  }

  async put(rec: SandboxRecord): Promise<void> {
    try {
      // An update may skip the dir sync: every phase a record passes through is one recovery
      // finishes or undoes, so a power cut that keeps the previous version loses nothing (and
      // takes every namespace with it anyway). The first write of a record does sync the dir.
      await writeFileAtomic(join(this.dir, `${rec.id}.json`), Buffer.from(JSON.stringify(rec)), { replacing: this.byId.has(rec.id) });
    } catch (err) {
      throw new StoreError(`failed to write sandbox record ${rec.id}: ${(err as Error).message}`);
    }
    this.byId.set(rec.id, rec);
  }

  async delete(id: string): Promise<void> {
    try {
      await unlinkIfExists(join(this.dir, `${id}.json`));
    } catch (err) {
      throw new StoreError(`failed to delete sandbox record ${id}: ${(err as Error).message}`);
    }
    this.byId.delete(id);
  }

  get(id: string): SandboxRecord | undefined {
    return this.byId.get(id);
  }

  all(): SandboxRecord[] {
    return [...this.byId.values()];
  }

  /** Full id or a unique prefix of one (among a door's, when given); undefined when none matches, an error when several do. */
  resolve(idOrPrefix: string, door?: Door): SandboxRecord | undefined {
    const exact = this.byId.get(idOrPrefix);
    if (exact && (door === undefined || exact.door === door)) return exact;
    if (!idOrPrefix) return undefined;
    let found: SandboxRecord | undefined;
    for (const [id, rec] of this.byId) {
      if (!id.startsWith(idOrPrefix) || (door !== undefined && rec.door !== door)) continue;
      if (found) throw new StoreError(`sandbox id prefix "${idOrPrefix}" is ambiguous`);
      found = rec;
    }
    return found;
  }

  /** A live sandbox (not notready) of the same pod attempt, among one door's. */
  findLive(m: PodMetadata, door: Door): SandboxRecord | undefined {
    for (const rec of this.byId.values()) {
      const o = rec.metadata;
      if (rec.phase !== 'notready' && rec.door === door && o.name === m.name && o.namespace === m.namespace && o.uid === m.uid && o.attempt === m.attempt) return rec;
    }
    return undefined;
  }
}

/**
 * The namespaces we made, by file name, kept apart from the records: another runtime (containerd)
 * names its namespaces cni-<uuid> in the same dir, and we must never remove one of those.
 */
export class NetnsLedger {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'netns');
  }

  private file(nsPath: string): string {
    const name = nsPath.slice(nsPath.lastIndexOf('/') + 1);
    if (!/^cni-[0-9a-f-]{36}$/.test(name)) throw new StoreError(`not a namespace name of ours: ${name}`);
    return join(this.dir, name);
  }

  async add(nsPath: string): Promise<void> {
    await writeFileAtomic(this.file(nsPath), Buffer.from(nsPath));
  }

  async remove(nsPath: string): Promise<void> {
    await unlinkIfExists(this.file(nsPath));
  }

  /** Temp files of writes a crash interrupted (only this daemon writes here). */
  removeTempFiles(): Promise<void> {
    return removeTempFiles(this.dir);
  }

  async list(): Promise<string[]> {
    try {
      const names = await readdir(this.dir);
      const out: string[] = [];
      for (const n of names) {
        if (isTempName(n)) continue;
        try {
          out.push((await readFile(join(this.dir, n), 'utf8')).trim());
        } catch {
          // vanished between readdir and read
        }
      }
      return out;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }
}

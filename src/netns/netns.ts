import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, stat, statfs, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InlineSpawner, type Spawner } from '../spawner/spawner.js';
import { unlinkIfExists } from '../util/write-atomic.js';

/** Our namespaces are `cni-<uuid>`, like containerd's; other tools' files in the dir are never ours. */
export const NETNS_PREFIX = 'cni-';
/** f_type of nsfs (linux/magic.h NSFS_MAGIC). */
const NSFS_MAGIC = 0x6e736673;
const OWN_NAME_RE = /^cni-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class NetnsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetnsError';
  }
}

export function isOwnNetnsName(name: string): boolean {
  return OWN_NAME_RE.test(name);
}

/** Every nsfs mount point (bind-mounted namespaces), read once from /proc/self/mountinfo. */
export async function nsfsMounts(): Promise<Set<string>> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const out = new Set<string>();
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    // field 4 is the mount point, and after " - " the fs type.
    const sep = f.indexOf('-');
    if (sep > 0 && f[sep + 1] === 'nsfs' && f[4]) out.add(f[4]);
  }
  return out;
}

/** Whether a path is a mount point of ours (the bind mount of an nsfs inode). */
export async function isNsfsMount(path: string): Promise<boolean> {
  return (await nsfsMounts()).has(resolve(path));
}

/** The two privileged calls behind a persistent namespace. */
export interface NamespaceOps {
  /** Makes a new network namespace and bind-mounts it on `path`, an existing empty file. */
  mountNewNetns(path: string): Promise<void>;
  /** Lazily unmounts `path`, so a plugin still holding the namespace can't make cleanup fail. */
  unmount(path: string): Promise<void>;
}

/** NamespaceOps with unshare(1) and umount(8): Node cannot unshare a thread of its own. */
export class CommandNamespaceOps implements NamespaceOps {
  constructor(private readonly spawner: Spawner = new InlineSpawner()) {}

  async mountNewNetns(path: string): Promise<void> {
    // unshare(1) creates the namespace in a child and bind-mounts /proc/<pid>/ns/net onto the file.
    await this.run('unshare', [`--net=${path}`, 'true'], `failed to create network namespace ${path}`);
  }

  async unmount(path: string): Promise<void> {
    await this.run('umount', ['-l', path], `failed to unmount network namespace ${path}`);
  }

  private async run(cmd: string, args: string[], what: string): Promise<void> {
    const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
    const r = await this.spawner.spawn({ path: cmd, args, env, maxOutput: 1024 * 1024 });
    if (r.exitCode !== 0) throw new NetnsError(`${what}: ${r.stderr.toString('utf8').trim() || `${cmd} ${r.signal ?? `exit ${r.exitCode}`}`}`);
  }
}

/**
 * Creates and removes persistent network namespaces: an empty file under the netns dir with a
 * new namespace bind-mounted on it, as `ip netns add` does but in a dir of our choosing.
 */
export class NetnsManager {
  readonly dir: string;

  constructor(
    dir: string,
    private readonly ops: NamespaceOps = new CommandNamespaceOps(),
  ) {
    this.dir = resolve(dir);
  }

  /** A fresh path for a namespace, so callers can record it before it exists. */
  newPath(): string {
    return join(this.dir, `${NETNS_PREFIX}${randomUUID()}`);
  }

  async create(path = this.newPath(), signal?: AbortSignal): Promise<string> {
    this.assertOwn(path);
    if (signal?.aborted) throw new NetnsError(`not creating network namespace ${path}: the request was aborted`);
    await (await this.createFile(path)).close();
    try {
      await this.ops.mountNewNetns(path);
      // A cancel that lands after the mount still counts as a failure, so the namespace is
      // removed here rather than left mounted for a caller that gave up.
      if (signal?.aborted) throw new NetnsError(`not creating network namespace ${path}: the request was aborted`);
    } catch (err) {
      await this.remove(path).catch(() => undefined);
      throw err instanceof NetnsError ? err : new NetnsError(`failed to create network namespace ${path}: ${(err as Error).message}`);
    }
    return path;
  }

  /** The empty mount point; the dir is made only when it is missing (on first use, or removed). */
  private async createFile(path: string): Promise<FileHandle> {
    try {
      return await open(path, 'wx', 0o444);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(this.dir, { recursive: true, mode: 0o755 });
      return await open(path, 'wx', 0o444);
    }
  }

  /** Unmounts and deletes one of our namespaces; a namespace that is already gone is fine. */
  async remove(path: string): Promise<void> {
    this.assertOwn(path);
    try {
      await stat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    // Lazy unmount: a plugin still holding the namespace open must not make us fail to clean up.
    try {
      await this.ops.unmount(path);
    } catch (err) {
      // Not mounted (a crash between creating the file and mounting) is fine; still mounted is not.
      if (await this.exists(path)) throw err instanceof NetnsError ? err : new NetnsError(`failed to unmount network namespace ${path}: ${(err as Error).message}`);
    }
    await unlinkIfExists(path);
  }

  /**
   * Whether the namespace is really there: a mounted nsfs, not just the file. A crash between
   * creating the file and mounting leaves a plain file, and a plugin handed that as CNI_NETNS
   * fails its DEL ("unknown FS magic").
   */
  async exists(path: string): Promise<boolean> {
    try {
      // statfs of a bind-mounted namespace reports nsfs; one syscall, where reading the mount
      // table costs milliseconds with a thousand namespaces mounted.
      return (await statfs(path)).type === NSFS_MAGIC;
    } catch {
      return false;
    }
  }

  /** Our namespace files in the dir (by name pattern; other tools' files are left alone). */
  async list(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter(isOwnNetnsName).sort().map((n) => join(this.dir, n));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /** Paths come from our own records, but a corrupted record must still not make us unmount /. */
  private assertOwn(path: string): void {
    const p = resolve(path);
    if (dirname(p) !== this.dir || !isOwnNetnsName(basename(p))) {
      throw new NetnsError(`refusing to touch ${path}: not a namespace of ours under ${this.dir}`);
    }
  }
}

import { close, fdatasync, fsync, lstat, mkdir, open, rename, unlink, write } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';

export interface WriteAtomicOptions {
  /** Mode of the file (default 0600). */
  mode?: number;
  /** Mode of the dir when it has to be made (default 0700). */
  dirMode?: number;
  /**
   * The file already exists and its current content is a state the reader handles. Then a
   * power cut that loses the rename leaves that old content, which is fine, and the dir fsync
   * (a third of the cost of a write) is skipped. The file's own data is still synced first, so
   * the rename can never expose a half-written file.
   */
  replacing?: boolean;
  /**
   * false: the dir is not synced, so a power cut may lose the file's name (never expose a half of
   * it). For files a reader can do without, as libcni's cache (which it writes with no sync at
   * all). Default true.
   */
  syncDir?: boolean;
}

// The callback fs API: the promise API's FileHandle costs more CPU per call than the syscalls
// it wraps, and a sandbox cycle makes about fifty of these calls.
const openP = (path: string, flags: string, mode: number): Promise<number> =>
  new Promise((resolve, reject) => open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
const voidP = (fn: (cb: (err: NodeJS.ErrnoException | null) => void) => void): Promise<void> =>
  new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
const writeP = (fd: number, data: Buffer, off: number): Promise<number> =>
  new Promise((resolve, reject) => write(fd, data, off, data.length - off, null, (err, n) => (err ? reject(err) : resolve(n))));

async function writeAll(fd: number, data: Buffer): Promise<void> {
  for (let off = 0; off < data.length; ) off += await writeP(fd, data, off);
}

/** Opens a new file, making its dir only when it is missing (it exists on every write but the first). */
async function openCreatingDir(file: string, mode: number, dirMode: number): Promise<number> {
  try {
    return await openP(file, 'w', mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await voidP((cb) => mkdir(dirname(file), { recursive: true, mode: dirMode }, (e) => cb(e)));
    return await openP(file, 'w', mode);
  }
}

/**
 * Temp names end in 12 hex digits (what the cache's and store's temp sweeps match): 6 random per
 * process, so the CLI and the daemon writing the same file never collide, and a 6-digit counter,
 * so a write costs no call into the CSPRNG.
 */
const TEMP_PREFIX = randomBytes(3).toString('hex');
let tempCounter = 0;

function tempName(file: string): string {
  tempCounter = (tempCounter + 1) & 0xffffff;
  return `${file}.tmp-${TEMP_PREFIX}${tempCounter.toString(16).padStart(6, '0')}`;
}

const TEMP_RE = /\.tmp-[0-9a-f]{12}$/;

/** Whether a name is a temp file of writeFileAtomic (a write a crash interrupted before its rename). */
export function isTempName(name: string): boolean {
  return TEMP_RE.test(name);
}

/** Deletes writeFileAtomic's leftover temp files in a dir; other names are left alone. */
export async function removeTempFiles(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.filter(isTempName).map((n) => unlinkIfExists(join(dir, n))));
}

/** Deletes a file; one that is already gone is fine. One unlink, where rm({force}) adds an lstat. */
export async function unlinkIfExists(file: string): Promise<void> {
  try {
    await voidP((cb) => unlink(file, cb));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    // A read-only fs refuses an unlink before it looks the name up: one that is not there is
    // still gone (a cleanup of a write that never happened must not fail on it).
    if (code === 'EROFS' && (await voidP((cb) => lstat(file, (e) => cb(e))).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ENOENT'))) return;
    throw err;
  }
}

/**
 * Write to a temp file, sync it, rename it over the file, sync the dir: a crash leaves the old
 * file or the new, never half of one.
 */
export async function writeFileAtomic(file: string, data: Buffer, opts: WriteAtomicOptions = {}): Promise<void> {
  const tmp = tempName(file);
  try {
    const fd = await openCreatingDir(tmp, opts.mode ?? 0o600, opts.dirMode ?? 0o700);
    try {
      await writeAll(fd, data);
      await voidP((cb) => fdatasync(fd, cb));
    } finally {
      await voidP((cb) => close(fd, cb));
    }
    await voidP((cb) => rename(tmp, file, cb));
  } catch (err) {
    // A full disk fails the write half-way: never leave the partial temp file behind.
    await voidP((cb) => unlink(tmp, cb)).catch(() => undefined);
    throw err;
  }
  if (opts.replacing || opts.syncDir === false) return;
  const dfd = await openP(dirname(file), 'r', 0);
  try {
    await voidP((cb) => fsync(dfd, cb));
  } finally {
    await voidP((cb) => close(dfd, cb));
  }
}

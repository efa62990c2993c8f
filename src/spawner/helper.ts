import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { NetDevReader } from '../netns/netdev.js';
import type { NamespaceOps } from '../netns/netns.js';
import { DEFAULT_MAX_OUTPUT, killGroup, OutputLimitError, signalName, SpawnError, type SpawnRequest, type SpawnResult, type Spawner } from './spawner.js';

/** Where `make build` puts the helper: dist/libexec, two levels up from this module in src/ or dist/. */
export const HELPER_BINARY = join(import.meta.dirname, '../../dist/libexec/podnet-spawner');

export async function helperAvailable(binary = HELPER_BINARY): Promise<boolean> {
  try {
    await access(binary, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

// Frame types; the layout is documented at the top of podnet-spawner.c.
const REQ_SPAWN = 1;
const REQ_NETNS = 2;
const REQ_UMOUNT = 3;
const REQ_KILL = 4;
const REQ_NETDEV = 5;
const REP_STARTED = 0x81;
const REP_EXITED = 0x82;
const REP_ERROR = 0x83;
const REP_OK = 0x84;
const REP_DATA = 0x85;

const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

function errnoName(n: number): string {
  return ERRNO_NAMES.get(n) ?? `errno ${n}`;
}

/** A failed namespace call in the helper, with the errno name (EINVAL, EPERM…). */
export class HelperOpError extends Error {
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
    this.name = 'HelperOpError';
  }
}

interface Pending {
  resolve(frame: { type: number; body: Buffer }): void;
  reject(err: Error): void;
  /** Set once STARTED arrives for a spawn. */
  pid?: number;
}

/**
 * Builds one request frame; strings are length-prefixed, so nothing needs escaping. The fields
 * are kept as they come and written into one buffer at the end: a spawn has some thirty of them,
 * and a buffer each cost more than the encoding itself.
 */
class FrameWriter {
  private readonly fields: Array<number | string | Buffer> = [];
  private size = 0;

  u32(v: number): this {
    this.fields.push(v);
    this.size += 4;
    return this;
  }

  str(s: string | Buffer, what: string): this {
    if (typeof s === 'string' && s.includes('\0')) throw new SpawnError(`${what} contains a NUL byte`);
    this.fields.push(s);
    this.size += 4 + (typeof s === 'string' ? Buffer.byteLength(s, 'utf8') : s.length);
    return this;
  }

  frame(id: number, type: number): Buffer {
    const b = Buffer.allocUnsafe(9 + this.size);
    b.writeUInt32LE(5 + this.size, 0);
    b.writeUInt32LE(id, 4);
    b.writeUInt8(type, 8);
    let off = 9;
    for (const f of this.fields) {
      if (typeof f === 'number') {
        off = b.writeUInt32LE(f, off);
      } else if (typeof f === 'string') {
        const n = b.write(f, off + 4, 'utf8');
        b.writeUInt32LE(n, off);
        off += 4 + n;
      } else {
        b.writeUInt32LE(f.length, off);
        off += 4 + f.copy(b, off + 4);
      }
    }
    return b;
  }
}

/**
 * The client of podnet-spawner: plugins and namespace calls go to one long-lived helper process,
 * so the daemon forks once at start instead of once per plugin. If the helper dies, calls in
 * flight fail (their process groups are killed) and the next call starts a new helper.
 */
export class SpawnHelper implements Spawner, NamespaceOps, NetDevReader {
  private proc: ChildProcessByStdio<Writable, Readable, null> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private rx: Buffer = Buffer.alloc(0);
  private closing = false;

  constructor(
    readonly binary = HELPER_BINARY,
    private readonly onExit?: (detail: string) => void,
  ) {}

  async spawn(req: SpawnRequest): Promise<SpawnResult> {
    const limit = req.maxOutput ?? DEFAULT_MAX_OUTPUT;
    const w = new FrameWriter().u32(limit).str(req.path, 'program path');
    const argv = [req.path, ...(req.args ?? [])];
    w.u32(argv.length);
    for (const a of argv) w.str(a, 'argument');
    const env = Object.entries(req.env);
    w.u32(env.length);
    for (const [k, v] of env) {
      if (k.includes('=')) throw new SpawnError(`environment name ${JSON.stringify(k)} contains "="`);
      w.str(`${k}=${v}`, `environment variable ${k}`);
    }
    w.str(req.stdin ?? Buffer.alloc(0), 'stdin');

    const id = this.id();
    const pend = this.call(id, w.frame(id, REQ_SPAWN));
    const onAbort = (): void => {
      // Not this.send(): a KILL must not start a fresh helper that never ran the plugin.
      this.proc?.stdin.write(new FrameWriter().frame(id, REQ_KILL));
    };
    req.signal?.addEventListener('abort', onAbort, { once: true });
    if (req.signal?.aborted) onAbort();
    try {
      const { type, body } = await pend;
      if (type === REP_ERROR) {
        const e = this.error(body);
        throw new SpawnError(e.message, errnoName(e.errno));
      }
      if (type !== REP_EXITED) throw new SpawnError(`spawn helper answered ${type} to a spawn`);
      let off = 0;
      const how = body.readUInt8(off);
      const value = body.readUInt32LE(off + 1);
      const overflowed = body.readUInt8(off + 5) === 1;
      off += 6;
      const outLen = body.readUInt32LE(off);
      const stdout = body.subarray(off + 4, off + 4 + outLen);
      off += 4 + outLen;
      const errLen = body.readUInt32LE(off);
      const stderr = body.subarray(off + 4, off + 4 + errLen);
      if (overflowed) throw new OutputLimitError(req.path, limit);
      return how === 1 ? { exitCode: null, signal: signalName(value), stdout, stderr } : { exitCode: value, signal: null, stdout, stderr };
    } finally {
      req.signal?.removeEventListener('abort', onAbort);
    }
  }

  async mountNewNetns(path: string): Promise<void> {
    await this.pathOp(REQ_NETNS, path);
  }

  async unmount(path: string): Promise<void> {
    await this.pathOp(REQ_UMOUNT, path);
  }

  /** /proc/net/dev of the namespace at path, read by the helper from inside it (setns, no process). */
  async readNetDev(path: string): Promise<string> {
    const body = await this.pathOp(REQ_NETDEV, path, REP_DATA);
    return body.subarray(4, 4 + body.readUInt32LE(0)).toString('utf8');
  }

  /** Ends the helper. Calls still in flight fail and their process groups are killed. */
  async close(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.closing = true;
    // Held while we wait: an idle helper is unref'd, and a daemon awaiting close() in its
    // shutdown path would otherwise see an empty event loop and exit with the await unsettled.
    this.ref(true);
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.stdin.end();
    await exited;
    this.closing = false;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  private async pathOp(type: number, path: string, expect = REP_OK): Promise<Buffer> {
    const id = this.id();
    const { type: rtype, body } = await this.call(id, new FrameWriter().str(path, 'path').frame(id, type));
    if (rtype === REP_ERROR) {
      const e = this.error(body);
      throw new HelperOpError(e.message, e.errno);
    }
    if (rtype !== expect) throw new HelperOpError(`spawn helper answered ${rtype}`, 0);
    return body;
  }

  private error(body: Buffer): { errno: number; message: string } {
    const len = body.readUInt32LE(4);
    return { errno: body.readUInt32LE(0), message: body.subarray(8, 8 + len).toString('utf8') };
  }

  private id(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xfffffff0 ? 1 : this.nextId + 1;
    return id;
  }

  private call(id: number, frame: Buffer): Promise<{ type: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) this.ref(true);
      this.send(frame);
    });
  }

  private send(frame: Buffer): void {
    this.start().stdin.write(frame);
  }

  private start(): ChildProcessByStdio<Writable, Readable, null> {
    if (this.proc) return this.proc;
    // The one fork the daemon does for plugins: the helper is started lazily and restarted the
    // same way after it dies.
    const proc = spawn(this.binary, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.proc = proc;
    this.rx = Buffer.alloc(0);
    proc.stdin.on('error', () => undefined);
    proc.stdout.on('data', (chunk: Buffer) => this.receive(chunk));
    const gone = (detail: string): void => {
      if (this.proc !== proc) return;
      this.proc = undefined;
      const err = new SpawnError(`spawn helper ${this.binary} ${detail}`);
      for (const [id, p] of this.pending) {
        // Its plugins are orphans now; their results can't reach us, so stop them.
        killGroup(p.pid);
        this.pending.delete(id);
        p.reject(err);
      }
      if (!this.closing) this.onExit?.(detail);
    };
    proc.on('error', (e) => gone(`failed: ${e.message}`));
    proc.on('exit', (code, sig) => gone(sig ? `was killed by ${sig}` : `exited with status ${code}`));
    if (this.pending.size === 0) this.ref(false);
    return proc;
  }

  /** Keeps the process alive only while calls are in flight, so a CLI using us can exit. */
  private ref(on: boolean): void {
    const proc = this.proc;
    if (!proc) return;
    const sock = proc.stdout as Readable & { ref?: () => void; unref?: () => void };
    if (on) {
      proc.ref();
      sock.ref?.();
    } else {
      proc.unref();
      sock.unref?.();
    }
  }

  private receive(chunk: Buffer): void {
    this.rx = this.rx.length ? Buffer.concat([this.rx, chunk]) : chunk;
    let off = 0;
    while (this.rx.length - off >= 9) {
      const len = this.rx.readUInt32LE(off);
      if (this.rx.length - off - 4 < len) break;
      const id = this.rx.readUInt32LE(off + 4);
      const type = this.rx.readUInt8(off + 8);
      const body = this.rx.subarray(off + 9, off + 4 + len);
      off += 4 + len;
      const p = this.pending.get(id);
      if (!p) continue;
      if (type === REP_STARTED) {
        p.pid = body.readInt32LE(0);
        continue;
      }
      this.pending.delete(id);
      if (this.pending.size === 0) this.ref(false);
      // Copy out of the shared receive buffer so a kept result doesn't pin it.
      p.resolve({ type, body: Buffer.from(body) });
    }
    this.rx = off === this.rx.length ? Buffer.alloc(0) : this.rx.subarray(off);
  }
}

/**
 * The CNI door: Multus' thick-plugin protocol (HTTP/1.1 on a unix socket) in front of the
 * pod-network engine. `POST /cni` carries one plugin call from a shim (podnet-cni or an unmodified
 * multus-shim), `POST /delegate` one hot-plug call, `/healthz` and `/readyz` the probes.
 */
import { chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { convertResult, type Result } from '../cni/result.js';
import { SUPPORTED_VERSIONS } from '../cni/version.js';
import { errorMessage } from '../cni/errors.js';
import { prepareSocket } from '../cri/server.js';
import type { CNIDoorBackend } from './backend.js';
import { clip } from '../util/quote.js';
import { CNIDoorError, DoorErrorCode, quote, undecodable } from './errors.js';
import { MAX_BODY_BYTES, parseCNIRequest, parseDelegateRequest, type RequestFacts } from './request.js';

/** The version /cni answers ADD in unless the shim asks for its stdin's (multus-shim converts itself). */
export const WIRE_RESULT_VERSION = '1.0.0';

export type Route = '/cni' | '/delegate';

export interface DoorObserver {
  (route: Route, command: string, outcome: string, durationMs: number): void;
}

export interface CNIDoorOptions {
  backend: CNIDoorBackend;
  log: Logger;
  observe?: DoorObserver;
}

/**
 * podnet-cni's header on ADD: how long to wait for this daemon to be ready (recovered, networks
 * loaded), which the shim once learned by probing /readyz before every ADD. Absent (multus-shim,
 * which probes on its own): no wait.
 */
const READY_TIMEOUT_HEADER = 'podnet-ready-timeout-ms';
const MAX_READY_TIMEOUT_MS = 600_000;
const READY_POLL_MS = 20;

/** The header's bound, checked as the shim's own readyTimeoutMs is. */
function readyTimeoutOf(req: IncomingMessage): number | undefined {
  const v = req.headers[READY_TIMEOUT_HEADER];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d{1,6}$/.test(v) || Number(v) > MAX_READY_TIMEOUT_MS) {
    throw new CNIDoorError(DoorErrorCode.InvalidEnvironment, `${READY_TIMEOUT_HEADER} must be an integer from 0 to ${MAX_READY_TIMEOUT_MS}`, quote(v));
  }
  return Number(v);
}

interface Answer {
  status: number;
  body: string;
  /** The CNI error, when the answer is one. */
  error?: CNIDoorError;
}

const json = (v: unknown): string => JSON.stringify(v);

function errorAnswer(status: number, cniVersion: string, e: CNIDoorError): Answer {
  return { status, error: e, body: json({ cniVersion, code: e.code, msg: e.msg, ...(e.details ? { details: e.details } : {}) }) };
}

export class CNIDoorServer {
  private readonly server: Server;
  private draining = false;
  private socketPath = '';
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly opts: CNIDoorOptions) {
    this.server = createServer({ requestTimeout: 60_000, headersTimeout: 10_000 }, (req, res) => {
      const p = this.handle(req, res).catch((err: unknown) => {
        this.opts.log.error({ door: 'cni', err: errorMessage(err) }, 'cni door: request handler failed');
        if (!res.headersSent) res.writeHead(500).end();
      });
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    });
    this.server.maxConnections = 4096;
  }

  /**
   * Serves on socketPath: its dir made 0700 when missing, a stale socket of a dead daemon
   * replaced, a live one refused. The socket is bound under a temporary name, made 0600, then
   * renamed into place, so it is never reachable with looser permissions.
   */
  async listen(socketPath: string): Promise<void> {
    const dir = dirname(socketPath);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const st = await stat(dir);
    if ((st.mode & 0o077) !== 0) this.opts.log.warn({ door: 'cni', dir }, 'cni door: the socket dir is accessible to other users; the socket itself is 0600');
    await prepareSocket(socketPath);
    const tmp = `${socketPath}.tmp-${process.pid}`;
    await rm(tmp, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(tmp, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    await chmod(tmp, 0o600);
    await rename(tmp, socketPath);
    this.socketPath = socketPath;
  }

  /** SIGTERM: /readyz answers 500 and new calls get code 11 (try again later); in-flight ones finish. */
  beginShutdown(): void {
    this.draining = true;
  }

  /**
   * Waits for the calls in flight; the socket keeps serving meanwhile, so a prober sees /readyz
   * 500 (and a new call code 11) for as long as the daemon drains, rather than a refused connection.
   */
  async drain(): Promise<void> {
    this.draining = true;
    await Promise.allSettled([...this.inFlight]);
  }

  /** Stops accepting, waits for in-flight calls, removes the socket. */
  async close(): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    await Promise.allSettled([...this.inFlight]);
    this.server.closeAllConnections();
    await closed;
    if (this.socketPath) await rm(this.socketPath, { force: true });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? '';
    if (path === '/healthz' || path === '/readyz') {
      // Read what the prober sent (multus-shim POSTs "null") before answering: closing a
      // connection with unread bytes makes the kernel reset it, and the prober could lose the answer.
      await drain(req);
      if (method !== 'GET' && method !== 'POST') return this.send(res, { status: 405, body: '' });
      const ok = path === '/healthz' || (!this.draining && this.opts.backend.ready());
      return this.send(res, { status: ok ? 200 : 500, body: '' });
    }
    if ((path !== '/cni' && path !== '/delegate') || method !== 'POST') {
      await drain(req);
      return this.send(res, { status: path === '/cni' || path === '/delegate' ? 405 : 404, body: '' });
    }
    const route: Route = path;
    const started = performance.now();
    const facts: RequestFacts = {};
    let cniVersion: string = WIRE_RESULT_VERSION;
    const ac = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) ac.abort(new Error('the shim closed the connection'));
    });
    let answer: Answer;
    try {
      const text = await readBody(req);
      if (this.draining) throw new CNIDoorError(DoorErrorCode.TryAgainLater, 'podnetd is shutting down', 'retry when it is back');
      if (route === '/cni') {
        const r = parseCNIRequest(text, facts);
        if (r.kind !== 'version') cniVersion = r.call.cniVersion;
        const readyTimeout = readyTimeoutOf(req);
        if (readyTimeout !== undefined && r.kind === 'attachment' && r.call.command === 'ADD') await this.untilReady(readyTimeout, ac.signal);
        answer = await this.cni(r, ac.signal);
      } else {
        const call = parseDelegateRequest(text, facts);
        if (call.command === 'ADD') answer = ok({ Result: convertResult(checked(await this.opts.backend.delegateAdd(call, ac.signal)), WIRE_RESULT_VERSION) });
        else {
          await this.opts.backend.delegateDel(call, ac.signal);
          answer = { status: 200, body: '' };
        }
      }
    } catch (err) {
      const e = err instanceof CNIDoorError ? err : internal(err);
      answer = errorAnswer(400, cniVersion, e);
      if (err instanceof BodyTooLarge) res.setHeader('Connection', 'close');
    }
    const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    const e = answer.error;
    const outcome = e ? `code ${e.code}` : 'OK';
    const level = !e ? 'info' : e.code === DoorErrorCode.Internal ? 'error' : 'warn';
    const cause = e?.cause instanceof Error ? { stack: clip(e.cause.stack ?? e.cause.message, 4000) } : {};
    const extra = { ...(ac.signal.aborted ? { aborted: true } : {}), ...(e ? { err: e.message, ...cause } : {}) };
    this.opts.log[level]({ door: 'cni', route, ...facts, outcome, durationMs, ...extra }, `cni ${facts.command ?? route}`);
    this.opts.observe?.(route, facts.command ?? 'unknown', outcome, durationMs);
    if (!res.destroyed) this.send(res, answer);
  }

  /** Waits until the backend is ready; code 11 when it is not within ms, or the shim went away. */
  private async untilReady(ms: number, signal: AbortSignal): Promise<void> {
    const deadline = performance.now() + ms;
    while (!this.opts.backend.ready()) {
      if (this.draining) throw new CNIDoorError(DoorErrorCode.TryAgainLater, 'podnetd is shutting down', 'retry when it is back');
      if (signal.aborted || performance.now() >= deadline) {
        throw new CNIDoorError(DoorErrorCode.TryAgainLater, `podnetd was not ready within ${ms} ms`, 'it answers /readyz with 500 (still recovering its sandboxes, or no network loaded)');
      }
      await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
    }
  }

  private async cni(r: ReturnType<typeof parseCNIRequest>, signal: AbortSignal): Promise<Answer> {
    const b = this.opts.backend;
    switch (r.kind) {
      case 'version':
        return ok({ cniVersion: r.cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] });
      case 'gc':
        await b.gc(r.call, signal);
        return { status: 200, body: '' };
      case 'status':
        await b.status(r.call, signal);
        return { status: 200, body: '' };
      case 'attachment':
        switch (r.call.command) {
          case 'ADD':
            return ok({ Result: convertResult(checked(await b.add(r.call, signal)), r.resultVersion ?? WIRE_RESULT_VERSION) });
          case 'DEL':
            await b.del(r.call, signal);
            return { status: 200, body: '' };
          case 'CHECK':
            await b.check(r.call, signal);
            return { status: 200, body: '' };
        }
    }
  }

  private send(res: ServerResponse, a: Answer): void {
    const headers: Record<string, string | number> = { 'Content-Length': Buffer.byteLength(a.body) };
    if (a.body) headers['Content-Type'] = 'application/json';
    res.writeHead(a.status, headers).end(a.body);
  }
}

/** Anything but a CNIDoorError is our bug or the engine's: code 999, a bounded message; the stack goes to the log. */
function internal(err: unknown): CNIDoorError {
  return new CNIDoorError(DoorErrorCode.Internal, 'internal error in podnetd', clip(errorMessage(err), 200), { cause: err });
}

function ok(v: unknown): Answer {
  return { status: 200, body: json(v) };
}

/** The backend's result must be in the current shape for the conversion to mean anything. */
function checked(r: Result): Result {
  if (typeof r !== 'object' || r === null || (r.cniVersion !== '1.0.0' && r.cniVersion !== '1.1.0')) {
    throw new Error(`the engine answered ADD with a result of version ${quote((r as { cniVersion?: unknown } | null)?.cniVersion)}, not 1.x`);
  }
  return r;
}

class BodyTooLarge extends CNIDoorError {}

const MAX_PROBE_BODY = 64 * 1024;

/** Reads and drops a probe's small body; a larger one is cut off (the connection closes). */
async function drain(req: IncomingMessage): Promise<void> {
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_PROBE_BODY) break;
    }
  } catch {
    // The prober went away; the answer has nowhere to go anyway.
  }
}

/** The body, bounded: a declared or actual length over the bound stops reading. */
function readBody(req: IncomingMessage): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  const tooLarge = (): BodyTooLarge => new BodyTooLarge(DoorErrorCode.DecodingFailure, `request body is larger than ${MAX_BODY_BYTES} bytes`);
  if (declared > MAX_BODY_BYTES) {
    req.pause();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.pause();
        req.removeAllListeners('data');
        reject(tooLarge());
        return;
      }
      chunks.push(c);
    });
    req.once('end', () => {
      const buf = Buffer.concat(chunks);
      const text = buf.toString('utf8');
      // A body that is not UTF-8 would be silently changed by decoding; refuse it instead.
      if (!Buffer.from(text, 'utf8').equals(buf)) reject(undecodable('request body is not UTF-8'));
      else resolve(text);
    });
    req.once('error', reject);
    req.once('aborted', () => reject(new CNIDoorError(DoorErrorCode.IOFailure, 'the shim closed the connection before sending the whole request')));
  });
}

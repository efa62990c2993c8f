import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/** One process to run: no shell, a complete environment, stdin written then closed. */
export interface SpawnRequest {
  /** Absolute path of the program (the helper does no PATH lookup). */
  path: string;
  /** Arguments after argv[0]. */
  args?: readonly string[];
  /** The whole environment of the process; nothing is inherited. */
  env: Readonly<Record<string, string>>;
  stdin?: Buffer;
  /** Aborting it SIGKILLs the process group; the promise still settles once the process is reaped. */
  signal?: AbortSignal;
  /** Bound on stdout + stderr bytes; past it the group is killed and spawn() rejects. */
  maxOutput?: number;
}

export interface SpawnResult {
  /** null when the process died of a signal. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
}

/**
 * Starts processes in their own session and process group, so a kill of the group reaches
 * everything a plugin started. Two implementations: InlineSpawner (child_process in this process)
 * and SpawnHelper (the podnet-spawner helper, which keeps forks out of the daemon).
 */
export interface Spawner {
  spawn(req: SpawnRequest): Promise<SpawnResult>;
}

export const DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024;

/** The process could not be started at all (missing binary, not executable, bad request). */
export class SpawnError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'SpawnError';
  }
}

export class OutputLimitError extends Error {
  constructor(path: string, limit: number) {
    super(`${path} wrote more than ${limit} bytes of output; killed`);
    this.name = 'OutputLimitError';
  }
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

export function signalName(n: number): NodeJS.Signals {
  return SIGNAL_NAMES.get(n) ?? (`SIG${n}` as NodeJS.Signals);
}

export function killGroup(pid: number | undefined): void {
  if (pid === undefined || pid <= 0) return;
  try {
    // Negative pid: the whole group, so a plugin's own children (bridge → host-local) die with it.
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * child_process.spawn with only what running a plugin needs. execa did the same job with a layer
 * that cost more CPU than the fork itself (per-call AbortControllers, option normalisation,
 * stream helpers; bench/NOTES.md finding 2).
 */
export class InlineSpawner implements Spawner {
  spawn(req: SpawnRequest): Promise<SpawnResult> {
    const limit = req.maxOutput ?? DEFAULT_MAX_OUTPUT;
    return new Promise<SpawnResult>((resolve, reject) => {
      const child = spawn(req.path, req.args ?? [], { env: req.env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      let overflowed = false;
      let settled = false;
      const collect =
        (into: Buffer[]) =>
        (chunk: Buffer): void => {
          size += chunk.length;
          if (size > limit) {
            if (!overflowed) killGroup(child.pid);
            overflowed = true;
            return;
          }
          into.push(chunk);
        };
      const onAbort = (): void => killGroup(child.pid);
      const finish = (): void => {
        settled = true;
        req.signal?.removeEventListener('abort', onAbort);
      };
      child.stdout.on('data', collect(out));
      child.stderr.on('data', collect(err));
      // A plugin that exits without reading stdin gives EPIPE here; its exit status tells the story.
      child.stdin.on('error', () => undefined);
      child.on('error', (e: NodeJS.ErrnoException) => {
        if (settled) return;
        finish();
        killGroup(child.pid);
        reject(new SpawnError(`failed to start ${req.path}: ${e.message}`, e.code));
      });
      child.on('close', (code, sig) => {
        if (settled) return;
        finish();
        if (overflowed) return reject(new OutputLimitError(req.path, limit));
        resolve({ exitCode: code, signal: sig, stdout: Buffer.concat(out), stderr: Buffer.concat(err) });
      });
      req.signal?.addEventListener('abort', onAbort, { once: true });
      if (req.signal?.aborted) onAbort();
      child.stdin.end(req.stdin ?? Buffer.alloc(0));
    });
  }
}

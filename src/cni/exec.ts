import { access, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { validatePluginType } from './config.js';
import { InvalidRequestError } from './errors.js';

export interface ExecRequest {
  pluginPath: string;
  stdin: Buffer;
  /** The CNI_* parameters; the executor adds the daemon's own environment (PATH and the like). */
  env: Readonly<Record<string, string>>;
  /** Aborting it kills the plugin and everything it started. */
  signal?: AbortSignal;
}

export interface ExecOutput {
  exitCode: number;
  /** Set when the plugin died of a signal rather than exiting. */
  signal?: string;
  stdout: Buffer;
  stderr: string;
}

/**
 * How plugins are found and run. The library takes one of these rather than spawning directly,
 * so tests and embedders can wrap it (fault injection, timing) without module mocks.
 */
export interface PluginExec {
  findInPath(type: string, dirs: readonly string[]): Promise<string>;
  run(req: ExecRequest): Promise<ExecOutput>;
}

/** Raised by run() when the signal fired; the process group is already dead by then. */
export class ExecAbortedError extends Error {
  constructor(readonly reason: unknown) {
    super('plugin execution aborted');
    this.name = 'ExecAbortedError';
  }
}

export async function findInPath(type: string, dirs: readonly string[]): Promise<string> {
  validatePluginType(type);
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, type);
    try {
      const st = await stat(candidate);
      if (!st.isFile()) continue;
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this dir; keep looking
    }
  }
  throw new InvalidRequestError(`failed to find plugin "${type}" in path [${dirs.join(' ')}]`);
}

/** Our environment without any CNI_* of our own, so a daemon started from a plugin shell can't leak them. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('CNI_')) env[k] = v;
  }
  if (!env['PATH']) env['PATH'] = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return env;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    // Negative pid: the whole group, so a plugin's own children (bridge → host-local) die with it.
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Runs plugins as real processes with execa: no shell, own process group, killed as a group on abort. */
export class RawExec implements PluginExec {
  private readonly env = baseEnv();

  findInPath(type: string, dirs: readonly string[]): Promise<string> {
    return findInPath(type, dirs);
  }

  async run(req: ExecRequest): Promise<ExecOutput> {
    if (req.signal?.aborted) throw new ExecAbortedError(req.signal.reason);
    const child = execa(req.pluginPath, [], {
      input: req.stdin,
      env: { ...this.env, ...req.env },
      extendEnv: false,
      detached: true,
      reject: false,
      encoding: 'buffer',
      stripFinalNewline: false,
      maxBuffer: 16 * 1024 * 1024,
    });
    const onAbort = (): void => killGroup(child.pid);
    req.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await child;
      if (req.signal?.aborted) {
        killGroup(child.pid);
        throw new ExecAbortedError(req.signal.reason);
      }
      if (r.exitCode === undefined && !r.signal) {
        throw new Error(`failed to run ${req.pluginPath}: ${r.originalMessage ?? r.shortMessage}`);
      }
      return {
        exitCode: r.exitCode ?? 128,
        ...(r.signal ? { signal: r.signal } : {}),
        stdout: Buffer.from(r.stdout),
        stderr: Buffer.from(r.stderr).toString('utf8'),
      };
    } finally {
      req.signal?.removeEventListener('abort', onAbort);
    }
  }
}

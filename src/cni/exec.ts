import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InlineSpawner, type Spawner } from '../spawner/spawner.js';
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
  if (!dirs.some(Boolean)) throw new InvalidRequestError('no paths provided');
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, type);
    try {
      // One stat per candidate (CNIConfig may cache the answer; see cachePluginPaths). Execute
      // bits rather than access(X_OK): one syscall less per plugin, and an exec that is refused
      // anyway fails with the cause.
      const st = await stat(candidate);
      if (st.isFile() && (st.mode & 0o111) !== 0) return candidate;
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

/**
 * Runs plugins as real processes: no shell, own process group, killed as a group on abort. The
 * Spawner decides where the fork happens (in this process, or in the podnet-spawner helper).
 */
export class RawExec implements PluginExec {
  private readonly env = baseEnv();

  constructor(private readonly spawner: Spawner = new InlineSpawner()) {}

  findInPath(type: string, dirs: readonly string[]): Promise<string> {
    return findInPath(type, dirs);
  }

  async run(req: ExecRequest): Promise<ExecOutput> {
    if (req.signal?.aborted) throw new ExecAbortedError(req.signal.reason);
    let r;
    try {
      r = await this.spawner.spawn({
        path: req.pluginPath,
        env: { ...this.env, ...req.env },
        stdin: req.stdin,
        // The spawner's default output bound (16 MiB): a result is a few KiB, so it only stops a runaway.
        ...(req.signal ? { signal: req.signal } : {}),
      });
    } catch (err) {
      if (req.signal?.aborted) throw new ExecAbortedError(req.signal.reason);
      throw new Error(`failed to run ${req.pluginPath}: ${(err as Error).message}`);
    }
    if (req.signal?.aborted) throw new ExecAbortedError(req.signal.reason);
    return {
      // A plugin killed by a signal has no exit code; 128 keeps "non-zero" true for callers.
      exitCode: r.exitCode ?? 128,
      ...(r.signal ? { signal: r.signal } : {}),
      stdout: r.stdout,
      stderr: r.stderr.toString('utf8'),
    };
  }
}

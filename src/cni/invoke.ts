import { ExecAbortedError, type PluginExec } from './exec.js';
import { ErrorCode, PluginError, PluginTimeoutError, type ErrorSite, type Verb } from './errors.js';
import { isObject, isStringArray, parseJSON } from './json.js';

/** What a plugin's VERSION answer says. */
export interface PluginInfo {
  cniVersion: string;
  supportedVersions: string[];
}

export interface InvokeArgs {
  verb: Verb;
  containerID?: string;
  netNS?: string;
  ifName?: string;
  cniArgs?: string;
  /** Colon-joined plugin dirs, for delegation (IPAM). */
  path: string;
}

/** Raised when the caller aborted for a reason other than a timeout (a client that gave up). */
export class PluginCanceledError extends PluginError {
  constructor(site: ErrorSite, reason: string) {
    super(site, 0, reason);
    this.name = 'PluginCanceledError';
  }
}

function envFor(a: InvokeArgs): Record<string, string> {
  const env: Record<string, string> = { CNI_COMMAND: a.verb, CNI_PATH: a.path };
  if (a.containerID !== undefined) env['CNI_CONTAINERID'] = a.containerID;
  if (a.netNS !== undefined) env['CNI_NETNS'] = a.netNS;
  if (a.ifName !== undefined) env['CNI_IFNAME'] = a.ifName;
  if (a.cniArgs) env['CNI_ARGS'] = a.cniArgs;
  return env;
}

function abortError(site: ErrorSite, reason: unknown): PluginError {
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new PluginTimeoutError(site, undefined, `timed out; the plugin was killed (${reason.message})`);
  }
  const why = reason instanceof Error ? reason.message : String(reason ?? 'aborted');
  return new PluginCanceledError(site, `canceled; the plugin was killed (${why})`);
}

/**
 * Runs one plugin once and turns its exit into data or a PluginError. Returns the parsed
 * stdout (undefined when it printed nothing).
 */
export async function execPlugin(
  exec: PluginExec,
  pluginPath: string,
  site: ErrorSite,
  stdin: Buffer,
  args: InvokeArgs,
  signal?: AbortSignal,
): Promise<unknown> {
  let out;
  try {
    out = await exec.run({ pluginPath, stdin, env: envFor(args), ...(signal ? { signal } : {}) });
  } catch (err) {
    if (err instanceof ExecAbortedError) throw abortError(site, err.reason);
    throw new PluginError(site, 0, err instanceof Error ? err.message : String(err));
  }
  const text = out.stdout.toString('utf8').trim();
  if (out.exitCode !== 0) {
    let parsed: unknown;
    try {
      parsed = text ? parseJSON(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (isObject(parsed) && typeof parsed['code'] === 'number') {
      const msg = typeof parsed['msg'] === 'string' ? parsed['msg'] : '';
      const details = typeof parsed['details'] === 'string' ? parsed['details'] : '';
      throw new PluginError(site, parsed['code'], msg || 'plugin reported an error', details, out.stderr);
    }
    const died = out.signal ? `killed by ${out.signal}` : `exit status ${out.exitCode}`;
    const said = out.stderr.trim() || text;
    throw new PluginError(site, 0, said ? `${died}: ${said}` : died, '', out.stderr);
  }
  if (!text) return undefined;
  try {
    return parseJSON(text);
  } catch {
    throw new PluginError(site, ErrorCode.DecodingFailure, `output is not JSON: ${JSON.stringify(text.slice(0, 200))}`, '', out.stderr);
  }
}

/** VERSION: which spec versions a plugin speaks. Plugins older than VERSION itself speak 0.1.0. */
export async function getVersionInfo(
  exec: PluginExec,
  pluginPath: string,
  site: ErrorSite,
  path: string,
  signal?: AbortSignal,
): Promise<PluginInfo> {
  const stdin = Buffer.from(JSON.stringify({ cniVersion: '1.1.0' }));
  let out: unknown;
  try {
    out = await execPlugin(exec, pluginPath, { ...site, verb: 'VERSION' }, stdin, { verb: 'VERSION', path }, signal);
  } catch (err) {
    if (err instanceof PluginError && /unknown CNI_COMMAND/i.test(err.message)) {
      return { cniVersion: '0.1.0', supportedVersions: ['0.1.0'] };
    }
    throw err;
  }
  if (!isObject(out) || !isStringArray(out['supportedVersions'])) {
    throw new PluginError({ ...site, verb: 'VERSION' }, ErrorCode.DecodingFailure, 'VERSION output has no "supportedVersions" list');
  }
  return {
    cniVersion: typeof out['cniVersion'] === 'string' ? out['cniVersion'] : '0.1.0',
    supportedVersions: out['supportedVersions'],
  };
}

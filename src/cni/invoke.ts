import { ExecAbortedError, type PluginExec } from './exec.js';
import { ErrorCode, PluginError, PluginTimeoutError, type ErrorSite, type Verb } from './errors.js';
import { isObject, isStringArray, parseJSON } from './json.js';
import { CURRENT_VERSION } from './version.js';

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

/** What a plugin printed on a successful run. */
export interface PluginOutput {
  /** The parsed stdout; undefined when it printed nothing. */
  stdout: unknown;
  /** What it wrote to stderr: informational only, passed on to the caller (libcni copies it to its own stderr). */
  stderr: string;
}

/**
 * libcni's Args.AsEnv: all six CNI_* variables for every verb, empty when they do not apply
 * (GC and STATUS have no container), so a plugin never sees one inherited from elsewhere.
 */
export function pluginEnv(a: InvokeArgs): Record<string, string> {
  return {
    CNI_COMMAND: a.verb,
    CNI_CONTAINERID: a.containerID ?? '',
    CNI_NETNS: a.netNS ?? '',
    CNI_ARGS: a.cniArgs ?? '',
    CNI_IFNAME: a.ifName ?? '',
    CNI_PATH: a.path,
  };
}

function abortError(site: ErrorSite, reason: unknown): PluginError {
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new PluginTimeoutError(site, undefined, `timed out; the plugin was killed (${reason.message})`);
  }
  const why = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'aborted';
  return new PluginCanceledError(site, `canceled; the plugin was killed (${why})`);
}

/** How Go's os/exec words an exit: "exit status 2", "signal: SIGKILL". */
function exitText(exitCode: number, signal: string | undefined): string {
  return signal ? `signal: ${signal}` : `exit status ${exitCode}`;
}

/**
 * Runs one plugin once and turns its exit into data or a PluginError, worded as libcni's RawExec
 * words it: an error JSON is the CNI error; otherwise "netplugin failed..." with the stderr.
 */
export async function execPlugin(
  exec: PluginExec,
  pluginPath: string,
  site: ErrorSite,
  stdin: Buffer,
  args: InvokeArgs,
  signal?: AbortSignal,
): Promise<PluginOutput> {
  let out;
  try {
    out = await exec.run({ pluginPath, stdin, env: pluginEnv(args), ...(signal ? { signal } : {}) });
  } catch (err) {
    if (err instanceof ExecAbortedError) throw abortError(site, err.reason);
    throw new PluginError(site, 0, err instanceof Error ? err.message : String(err));
  }
  const raw = out.stdout.toString('utf8');
  const text = raw.trim();
  if (out.exitCode !== 0) {
    const died = exitText(out.exitCode, out.signal);
    if (!text) {
      const msg = out.stderr ? `netplugin failed: ${JSON.stringify(out.stderr)}: ${died}` : `netplugin failed with no error message: ${died}`;
      throw new PluginError(site, 0, msg, '', out.stderr);
    }
    let parsed: unknown;
    try {
      parsed = parseJSON(text);
    } catch (err) {
      throw new PluginError(site, 0, `netplugin failed but error parsing its diagnostic message ${JSON.stringify(raw)}: ${(err as Error).message}`, '', out.stderr);
    }
    // Like Go's json.Unmarshal into types.Error: fields that are missing or of the wrong type stay empty.
    const obj = isObject(parsed) ? parsed : {};
    const code = typeof obj['code'] === 'number' ? obj['code'] : 0;
    const msg = typeof obj['msg'] === 'string' ? obj['msg'] : '';
    const details = typeof obj['details'] === 'string' ? obj['details'] : '';
    throw new PluginError(site, code, msg || `plugin reported an error without a message (${died})`, details, out.stderr);
  }
  if (!text) return { stdout: undefined, stderr: out.stderr };
  try {
    return { stdout: parseJSON(text), stderr: out.stderr };
  } catch {
    throw new PluginError(site, ErrorCode.DecodingFailure, `output is not JSON: ${JSON.stringify(text.slice(0, 200))}`, '', out.stderr);
  }
}

/** VERSION: which spec versions a plugin speaks. Plugins older than VERSION itself speak 0.1.0. */
export async function getVersionInfo(
  exec: PluginExec,
  pluginPath: string,
  site: ErrorSite,
  signal?: AbortSignal,
  onStderr?: (stderr: string) => void,
): Promise<PluginInfo> {
  const stdin = Buffer.from(JSON.stringify({ cniVersion: CURRENT_VERSION }));
  let out: unknown;
  try {
    // libcni's fake values, for plugins built with an old skel that insists on them for every verb.
    const ran = await execPlugin(exec, pluginPath, { ...site, verb: 'VERSION' }, stdin, { verb: 'VERSION', netNS: 'dummy', ifName: 'dummy', path: 'dummy' }, signal);
    if (ran.stderr) onStderr?.(ran.stderr);
    out = ran.stdout;
  } catch (err) {
    if (err instanceof PluginError && /unknown CNI_COMMAND/i.test(err.message)) {
      return { cniVersion: '0.1.0', supportedVersions: ['0.1.0'] };
    }
    throw err;
  }
  // libcni's PluginDecoder: a 0.2.0 plugin may answer without the list.
  if (isObject(out) && out['cniVersion'] === '0.2.0' && out['supportedVersions'] === undefined) return { cniVersion: '0.2.0', supportedVersions: ['0.1.0', '0.2.0'] };
  if (!isObject(out) || !isStringArray(out['supportedVersions'])) {
    throw new PluginError({ ...site, verb: 'VERSION' }, ErrorCode.DecodingFailure, 'VERSION output has no "supportedVersions" list');
  }
  return {
    cniVersion: typeof out['cniVersion'] === 'string' ? out['cniVersion'] : '0.1.0',
    supportedVersions: out['supportedVersions'],
  };
}

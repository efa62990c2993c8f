/** The verbs of the CNI protocol, as they go into CNI_COMMAND. */
export type Verb = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';

/** Well-known error codes of the spec (section 5, "Error"). */
export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  PluginNotAvailableLimitedConnectivity: 51,
} as const;

/** Where a failure happened: every error that crosses the library boundary names these. */
export interface ErrorSite {
  network: string;
  plugin: string;
  verb: Verb;
  /** The plugin config's own "name", when it has one (a `.conf` does): libcni names it too. */
  pluginName?: string;
}

/** The verb as libcni's list errors spell it: "(add)", "(delete)". */
const VERB_WORD: Record<Verb, string> = { ADD: 'add', DEL: 'delete', CHECK: 'check', GC: 'gc', STATUS: 'status', VERSION: 'version' };

/**
 * libcni's prefix for a failed plugin of a list: `plugin type="bridge" failed (add): `, with
 * ` name="..."` after the type when the plugin config has a name.
 */
export function pluginFailedPrefix(site: ErrorSite): string {
  const name = site.pluginName ? ` name=${JSON.stringify(site.pluginName)}` : '';
  return `plugin type=${JSON.stringify(site.plugin)}${name} failed (${VERB_WORD[site.verb]}): `;
}

/** A CNI error as libcni's types.Error renders it: the message, then "; details" if there are any. */
export function renderCNIError(msg: string, details: string): string {
  return details ? `${msg}; ${details}` : msg;
}

/** A plugin ran and reported failure (non-zero exit, or output we could not use). */
export class PluginError extends Error {
  readonly network: string;
  readonly plugin: string;
  readonly verb: Verb;
  /** The spec's error code; 0 when the plugin gave none (no JSON error on stdout). */
  readonly code: number;
  readonly msg: string;
  readonly details: string;
  readonly stderr: string;

  constructor(site: ErrorSite, code: number, msg: string, details = '', stderr = '') {
    // libcni's text first (what users grep for), then what podnet knows besides.
    const context = [...(site.network ? [`network ${JSON.stringify(site.network)}`] : []), ...(code ? [`code ${code}`] : [])];
    super(`${pluginFailedPrefix(site)}${renderCNIError(msg, details)}${context.length ? ` (${context.join(', ')})` : ''}`);
    this.name = 'PluginError';
    this.network = site.network;
    this.plugin = site.plugin;
    this.verb = site.verb;
    this.code = code;
    this.msg = msg;
    this.details = details;
    this.stderr = stderr;
  }
}

/** A plugin did not finish within its time; its whole process group was killed. */
export class PluginTimeoutError extends PluginError {
  readonly timeoutMs: number | undefined;
  constructor(site: ErrorSite, timeoutMs: number | undefined, reason: string) {
    super(site, 0, reason);
    this.name = 'PluginTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/** The caller's request was wrong before any plugin ran (bad args, missing binary, bad config). */
export class InvalidRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRequestError';
  }
}

/** A configuration file or object that does not follow section 1 of the spec. */
export class ConfigError extends Error {
  readonly file: string | undefined;
  constructor(message: string, file?: string) {
    super(file ? `${file}: ${message}` : message);
    this.name = 'ConfigError';
    this.file = file;
  }
}

/** Several independent failures (GC continues past errors and reports them all). */
export class MultiError extends Error {
  readonly errors: Error[];
  constructor(errors: Error[]) {
    super(errors.map((e) => e.message).join('; '));
    this.name = 'MultiError';
    this.errors = errors;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

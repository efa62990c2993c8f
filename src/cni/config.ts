import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, extname } from 'node:path';
import { ConfigError, errorMessage } from './errors.js';
import { isObject, parseJSON, type JSONObject } from './json.js';
import { CURRENT_VERSION, looseGreaterThan, parseLooseVersion, specVersionOf, type SpecVersion } from './version.js';

/** One entry of a network's `plugins` array. */
export interface PluginConfig {
  type: string;
  /** Capabilities the plugin declares (only the ones set to true). */
  capabilities: ReadonlySet<string>;
  /** The object as written: every key the runtime does not own is passed to the plugin untouched. */
  raw: JSONObject;
}

/** A network: what a `.conflist` describes (and what a single `.conf` becomes). */
export interface NetworkConfigList {
  name: string;
  /**
   * The spec version podnet reads this network in (which verbs exist, what shape a cached result is
   * converted to): declaredVersion, with none read as 0.1.0 and one newer than ours as ours.
   */
  cniVersion: SpecVersion;
  /**
   * The version libcni selects from cniVersion and cniVersions (empty when the file has neither;
   * possibly newer than we know): what plugins get as "cniVersion" on stdin, as libcni sends it.
   */
  declaredVersion: string;
  disableCheck: boolean;
  disableGC: boolean;
  loadOnlyInlinedPlugins: boolean;
  plugins: readonly PluginConfig[];
  /** The bytes this list was parsed from; stored in the result cache so DEL never depends on the file. */
  bytes: Buffer;
  /** Where it came from, when it came from a file. */
  source?: string;
}

export interface ConfigLoadError {
  file: string;
  reason: string;
}

export interface ConfDirLoad {
  lists: NetworkConfigList[];
  errors: ConfigLoadError[];
}

export const CONF_EXTENSIONS = ['.conf', '.conflist', '.json'] as const;

const NETWORK_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const MAX_CONFIG_BYTES = 1 << 20;

/** Plugin `type` is a file name in a bin dir: anything that could walk out of it is refused. */
export function validatePluginType(type: string): void {
  if (type === '' || type.includes('/') || type.includes('\\') || type.includes('..') || type.includes('\0')) {
    throw new ConfigError(`invalid plugin type "${type}": must be a plain file name`);
  }
}

export function validateNetworkName(name: string): void {
  if (!NETWORK_NAME_RE.test(name)) {
    throw new ConfigError(
      `invalid network name "${name}": must start with a letter or digit, then letters, digits, "_", "." or "-"`,
    );
  }
}

function parsePlugin(raw: unknown, where: string): PluginConfig {
  if (!isObject(raw)) throw new ConfigError(`${where}: plugin config must be a JSON object`);
  const type = raw['type'];
  if (typeof type !== 'string' || type === '') throw new ConfigError(`${where}: missing "type"`);
  validatePluginType(type);
  const caps = new Set<string>();
  const declared = raw['capabilities'];
  if (declared !== undefined) {
    if (!isObject(declared)) throw new ConfigError(`${where}: "capabilities" must be an object of booleans`);
    for (const [k, v] of Object.entries(declared)) {
      if (typeof v !== 'boolean') throw new ConfigError(`${where}: capability "${k}" must be true or false`);
      if (v) caps.add(k);
    }
  }
  return { type, capabilities: caps, raw };
}

/** libcni's readBool: a boolean, or the string "true" or "false" in any case. */
function optionalBool(obj: JSONObject, key: string): boolean {
  const v = obj[key];
  if (v === undefined) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'string') throw new ConfigError(`invalid type ${v === null ? 'null' : typeof v} for "${key}": must be true or false`);
  const s = v.toLowerCase();
  if (s === 'true' || s === 'false') return s === 'true';
  throw new ConfigError(`invalid value ${JSON.stringify(s)} for "${key}": must be true or false`);
}

function checkedVersion(v: string, what: string): string {
  try {
    parseLooseVersion(v);
  } catch (err) {
    throw new ConfigError(`invalid ${what}: ${errorMessage(err)}`);
  }
  return v;
}

/**
 * libcni's selection: cniVersion alone is taken as written (even newer than we know); with
 * cniVersions, the highest entry not newer than ours wins, cniVersion counting as one more entry,
 * an entry that is no version is an error, and if none is left cniVersion stays as written.
 */
function selectVersion(obj: JSONObject): { selected: SpecVersion; declared: string } {
  const raw = obj['cniVersion'];
  if (raw !== undefined && typeof raw !== 'string') throw new ConfigError('"cniVersion" must be a string');
  let declared = raw ?? '';
  const versions = obj['cniVersions'];
  if (versions !== undefined) {
    if (!Array.isArray(versions)) throw new ConfigError('"cniVersions" must be a list of strings');
    const candidates = versions.map((v, i) => {
      if (typeof v !== 'string') throw new ConfigError(`"cniVersions" entry ${i} must be a string`);
      return checkedVersion(v, `"cniVersions" entry ${JSON.stringify(v)} at index ${i}`);
    });
    if (declared !== '') candidates.push(checkedVersion(declared, `"cniVersion" ${JSON.stringify(declared)}`));
    const known = candidates.filter((v) => !looseGreaterThan(v, CURRENT_VERSION));
    const highest = known.reduce<string | undefined>((best, v) => (best === undefined || looseGreaterThan(v, best) ? v : best), undefined);
    if (highest !== undefined) declared = highest;
  }
  if (declared !== '') checkedVersion(declared, `"cniVersion" ${JSON.stringify(declared)}`);
  return { selected: specVersionOf(declared), declared };
}

/** A config file's JSON object, or a ConfigError saying why it is none. */
function configObject(bytes: Buffer, source?: string): JSONObject {
  let obj: unknown;
  try {
    obj = parseJSON(bytes);
  } catch (err) {
    throw new ConfigError(`invalid JSON: ${errorMessage(err)}`, source);
  }
  if (!isObject(obj)) throw new ConfigError('configuration must be a JSON object', source);
  return obj;
}

/**
 * Parses a network configuration list (section 1). `extraPlugins` are plugin objects aggregated
 * from other sources; they are appended unless the list sets `loadOnlyInlinedPlugins`.
 */
export function confListFromBytes(bytes: Buffer, source?: string, extraPlugins: readonly unknown[] = []): NetworkConfigList {
  try {
    const obj = configObject(bytes);
    const name = obj['name'];
    if (typeof name !== 'string' || name === '') throw new ConfigError('missing "name"');
    validateNetworkName(name);
    const { selected, declared } = selectVersion(obj);
    const loadOnlyInlinedPlugins = optionalBool(obj, 'loadOnlyInlinedPlugins');
    const rawPlugins = obj['plugins'];
    if (rawPlugins !== undefined && !Array.isArray(rawPlugins)) throw new ConfigError('"plugins" must be a list');
    if (rawPlugins === undefined && loadOnlyInlinedPlugins) {
      throw new ConfigError('"loadOnlyInlinedPlugins" is true but there is no "plugins" list');
    }
    if (Array.isArray(rawPlugins) && rawPlugins.length === 0) throw new ConfigError(`network "${name}" has no plugins: "plugins" is an empty list`);
    const plugins = (rawPlugins ?? []).map((p, i) => parsePlugin(p, `plugins[${i}]`));
    const aggregated = !loadOnlyInlinedPlugins && extraPlugins.length > 0;
    if (aggregated) {
      extraPlugins.forEach((p, i) => plugins.push(parsePlugin(p, `aggregated plugin ${i}`)));
      // The cache stores these bytes and DEL runs from them: they must hold every plugin that ran.
      bytes = Buffer.from(JSON.stringify({ ...obj, plugins: [...(rawPlugins ?? []), ...extraPlugins] }));
    }
    if (plugins.length === 0) throw new ConfigError(`network "${name}" has no plugins`);
    return {
      name,
      cniVersion: selected,
      declaredVersion: declared,
      disableCheck: optionalBool(obj, 'disableCheck'),
      disableGC: optionalBool(obj, 'disableGC'),
      loadOnlyInlinedPlugins,
      plugins,
      bytes,
      ...(source ? { source } : {}),
    };
  } catch (err) {
    if (err instanceof ConfigError && source && err.file === undefined) throw new ConfigError(err.message, source);
    throw err;
  }
}

/**
 * A single plugin config (`.conf`) becomes a one-plugin list, as libcni's ConfListFromConf does.
 * A `.conf` that already holds a `plugins` list is read as a list rather than refused.
 */
export function confListFromConfBytes(bytes: Buffer, source?: string): NetworkConfigList {
  const obj = configObject(bytes, source);
  if (Array.isArray(obj['plugins'])) return confListFromBytes(bytes, source);
  const list: JSONObject = { name: obj['name'] ?? null, plugins: [obj] };
  for (const key of ['cniVersion', 'cniVersions', 'disableCheck', 'disableGC'] as const) {
    if (obj[key] !== undefined) list[key] = obj[key];
  }
  if (list['name'] === null) delete list['name'];
  return confListFromBytes(Buffer.from(JSON.stringify(list)), source);
}

async function readBounded(file: string): Promise<Buffer> {
  const st = await stat(file);
  if (!st.isFile()) throw new ConfigError('not a regular file', file);
  if (st.size > MAX_CONFIG_BYTES) throw new ConfigError(`larger than ${MAX_CONFIG_BYTES} bytes`, file);
  return readFile(file);
}

/** Config files of a dir, sorted by name as libcni's ConfFiles does. A missing dir has none. */
export async function confFiles(dir: string, extensions: readonly string[] = CONF_EXTENSIONS): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return entries
    .filter((e) => !e.isDirectory() && extensions.includes(extname(e.name)))
    .map((e) => e.name)
    .sort()
    .map((n) => join(dir, n));
}

/**
 * Plugin objects from the sibling folder named after the network (spec 1.1.0 aggregation). A bad
 * one goes to onError, which may skip it (the daemon) or throw (libcni's lookup).
 */
async function siblingPlugins(dir: string, network: string, onError: (e: ConfigLoadError) => void): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const file of await confFiles(join(dir, network), ['.conf', '.json'])) {
    try {
      const obj = parseJSON(await readBounded(file));
      parsePlugin(obj, file);
      out.push(obj);
    } catch (err) {
      onError({ file, reason: errorMessage(err) });
    }
  }
  return out;
}

/** Whether a list takes plugins from its sibling folder: it has a usable name and does not refuse them. */
function aggregatesFrom(bytes: Buffer): string | undefined {
  let head: unknown;
  try {
    head = parseJSON(bytes);
  } catch {
    return undefined;
  }
  if (!isObject(head) || typeof head['name'] !== 'string' || !NETWORK_NAME_RE.test(head['name'])) return undefined;
  try {
    return optionalBool(head, 'loadOnlyInlinedPlugins') ? undefined : head['name'];
  } catch {
    return undefined; // confListFromBytes reports the bad value
  }
}

/** A `.conflist` with the plugins of its sibling folder appended (libcni's NetworkConfFromFile). */
async function loadConfListFile(file: string, onSiblingError: (e: ConfigLoadError) => void): Promise<NetworkConfigList> {
  const bytes = await readBounded(file);
  // Peek at name and loadOnlyInlinedPlugins first: a list may take all its plugins from the
  // sibling folder and have no "plugins" of its own.
  const network = aggregatesFrom(bytes);
  const extra = network === undefined ? [] : await siblingPlugins(dirname(file), network, onSiblingError);
  return confListFromBytes(bytes, file, extra);
}

export async function loadConfFile(file: string, extraPlugins: readonly unknown[] = []): Promise<NetworkConfigList> {
  const bytes = await readBounded(file);
  return extname(file) === '.conflist' ? confListFromBytes(bytes, file, extraPlugins) : confListFromConfBytes(bytes, file);
}

/**
 * Loads every network of a conf dir, in file-name order (as go-cni does). A bad file is reported
 * (file + reason) and skipped, never thrown: one broken file must not take the node's networking
 * down with it. A network name defined twice keeps the first file and reports the second.
 */
export async function loadConfDir(dir: string): Promise<ConfDirLoad> {
  const lists: NetworkConfigList[] = [];
  const errors: ConfigLoadError[] = [];
  const byName = new Map<string, string>();
  let files: string[];
  try {
    files = await confFiles(dir);
  } catch (err) {
    return { lists, errors: [{ file: dir, reason: errorMessage(err) }] };
  }
  for (const file of files) {
    try {
      const list = extname(file) === '.conflist' ? await loadConfListFile(file, (e) => errors.push(e)) : await loadConfFile(file);
      const first = byName.get(list.name);
      if (first) throw new ConfigError(`network "${list.name}" is already defined in ${first}`, file);
      byName.set(list.name, file);
      lists.push(list);
    } catch (err) {
      const reason = err instanceof ConfigError && err.file === file ? err.message.slice(file.length + 2) : errorMessage(err);
      errors.push({ file, reason });
    }
  }
  return { lists, errors };
}

/**
 * A network by name with the daemon's policy: broken files are skipped, and named in the error
 * when the network is not there.
 */
export async function loadNetworkByName(dir: string, name: string): Promise<NetworkConfigList> {
  const { lists, errors } = await loadConfDir(dir);
  const found = lists.find((l) => l.name === name);
  if (found) return found;
  const why = errors.length ? `; files skipped: ${errors.map((e) => `${e.file}: ${e.reason}`).join('; ')}` : '';
  throw new ConfigError(`no network named "${name}" in ${dir}${why}`);
}

/**
 * A network by name as libcni's LoadNetworkConf finds it (what cnitool does): every `.conflist`
 * in name order first, so a list wins over a `.conf` of the same name whatever the file names;
 * then `.conf`/`.json` files, read as single plugin configs (a nameless one matches nothing).
 * Unlike loadConfDir, a file that fails to parse before the match fails the lookup.
 */
export async function loadNetworkConf(dir: string, name: string): Promise<NetworkConfigList> {
  const listFiles = await confFiles(dir, ['.conflist']);
  for (const file of listFiles) {
    const list = await loadConfListFile(file, (e) => {
      throw new ConfigError(e.reason, e.file);
    });
    if (list.name === name) return list;
  }
  const singleFiles = await confFiles(dir, ['.conf', '.json']);
  if (singleFiles.length === 0 && listFiles.length === 0) throw new ConfigError(`no net configurations found in ${dir}`);
  for (const file of singleFiles) {
    const bytes = await readBounded(file);
    const obj = configObject(bytes, file);
    if (typeof obj['type'] !== 'string' || obj['type'] === '') throw new ConfigError('missing "type"', file);
    if (obj['name'] === name) return confListFromConfBytes(bytes, file);
  }
  throw new ConfigError(`no net configuration with name "${name}" in ${dir}`);
}

import { stat } from 'node:fs/promises';
import type { NetworkConfigList, PluginConfig } from './config.js';
import { confListFromConfBytes } from './config.js';
import { CACHE_KIND, ResultCache, type CachedAttachment } from './cache.js';
import { ErrorCode, InvalidRequestError, MultiError, PluginError, pluginFailedPrefix, type ErrorSite, type Verb } from './errors.js';
import { RawExec, type PluginExec } from './exec.js';
import { execPlugin, getVersionInfo, pluginEnv, type InvokeArgs, type PluginInfo } from './invoke.js';
import { isObject, type JSONObject } from './json.js';
import { convertResult, parseResult, type AnyResult } from './result.js';
import { parseJSON } from './json.js';
import { formatCniArgs, validateRuntimeConf, type RuntimeConf } from './runtime-conf.js';
import { compareVersions, isSupportedVersion, versionAtLeast, type SpecVersion } from './version.js';
import { handled } from '../util/settle.js';

/** One plugin execution, reported to an observer (metrics, logs, per-sandbox timings). */
export interface PluginExecEvent {
  /** Empty for GC, STATUS and VERSION, which have no container. */
  containerID: string;
  ifName: string;
  network: string;
  plugin: string;
  verb: Verb;
  durationMs: number;
  error?: Error;
}

/**
 * What a plugin wrote to stderr on a run that succeeded (libcni copies it to its own stderr; on
 * failure it is part of the error instead). cnitool prints it, podnetd logs it.
 */
export interface PluginStderrEvent {
  network: string;
  plugin: string;
  verb: Verb;
  /** Empty for GC, STATUS and VERSION. */
  containerID: string;
  ifName: string;
  stderr: string;
}

export interface CNIConfigOptions {
  /** Plugin dirs, searched in order. */
  path: readonly string[];
  cacheDir: string;
  exec?: PluginExec;
  observer?: (ev: PluginExecEvent) => void;
  /** Called with a successful plugin's stderr, when it wrote any. */
  onStderr?: (ev: PluginStderrEvent) => void;
  /**
   * Remember where each plugin type was found instead of searching the dirs on every exec. The
   * owner must call invalidatePluginPaths() when the plugin dirs change (podnetd does from its
   * config poll); a failed exec forgets its entry by itself.
   */
  cachePluginPaths?: boolean;
}

export interface OpOptions {
  signal?: AbortSignal;
  /**
   * The result cache's write (ADD's entry, DEL's removal) is started and pushed here instead of
   * awaited, so a caller can overlap it with its own durable write. The caller must settle every
   * one before it relies on the cache, or before it DELs what it added.
   */
  deferCacheWrites?: Array<Promise<void>>;
  /**
   * DEL: the attachment's cache entry, already read (getCachedAttachment), so it is not read again
   * for its prevResult. Absent: read from the cache dir as libcni does.
   */
  cached?: CachedAttachment;
}

/** An attachment that is still in use; GC leaves its resources alone. */
export interface GCAttachment {
  containerID: string;
  ifname: string;
}

export interface GCArgs {
  validAttachments: readonly GCAttachment[];
}

type Stdin = JSONObject;

/**
 * The CNI runtime of section 3: runs a network's plugin chain for ADD/DEL/CHECK, and GC,
 * STATUS and VERSION; keeps the result cache. One instance per set of plugin dirs + cache dir.
 */
export class CNIConfig {
  readonly path: readonly string[];
  readonly cache: ResultCache;
  private readonly exec: PluginExec;
  private readonly observer: ((ev: PluginExecEvent) => void) | undefined;
  private readonly onStderr: ((ev: PluginStderrEvent) => void) | undefined;
  /** Versions negotiated with plugins that refused the list's version: pluginPath → version. */
  private readonly negotiated = new Map<string, SpecVersion>();
  /** VERSION answers for the 1.1.0 verbs, by binary identity (see speaks110). */
  private readonly versionInfo = new Map<string, PluginInfo>();

  /** Plugin type → path, when cachePluginPaths is set. */
  private readonly pluginPaths: Map<string, string> | undefined;

  constructor(opts: CNIConfigOptions) {
    this.path = opts.path;
    this.cache = new ResultCache(opts.cacheDir);
    this.exec = opts.exec ?? new RawExec();
    this.observer = opts.observer;
    this.onStderr = opts.onStderr;
    if (opts.cachePluginPaths) this.pluginPaths = new Map();
  }

  /** Forget cached plugin paths: a plugin was added to, moved in or removed from the plugin dirs. */
  invalidatePluginPaths(): void {
    this.pluginPaths?.clear();
  }

  private async findPlugin(type: string): Promise<string> {
    const cached = this.pluginPaths?.get(type);
    if (cached !== undefined) return cached;
    const found = await this.exec.findInPath(type, this.path);
    this.pluginPaths?.set(type, found);
    return found;
  }

  /** findPlugin for a plugin of a list: a failure says which, as libcni's list errors do. */
  private async findListPlugin(site: ErrorSite): Promise<string> {
    try {
      return await this.findPlugin(site.plugin);
    } catch (err) {
      if (err instanceof InvalidRequestError) throw new InvalidRequestError(`${pluginFailedPrefix(site)}${err.message} (network ${JSON.stringify(site.network)})`);
      throw err;
    }
  }

  // ---- ADD / DEL / CHECK --------------------------------------------------------------------

  /** ADD every plugin in order, each getting the previous one's result; caches the final result. */
  async addNetworkList(list: NetworkConfigList, rt: RuntimeConf, opts: OpOptions = {}): Promise<AnyResult> {
    validateRuntimeConf(rt, true);
    let prev: AnyResult | undefined;
    for (const plugin of list.plugins) {
      const out = await this.runAttachmentPlugin('ADD', list, plugin, prev, rt, opts.signal);
      if (out === undefined) {
        throw new PluginError({ network: list.name, plugin: plugin.type, verb: 'ADD' }, ErrorCode.DecodingFailure, 'ADD returned no result');
      }
      prev = out;
    }
    const result = prev!;
    const write = this.cacheFor(rt).put(cacheEntry(list, rt, result));
    if (opts.deferCacheWrites) opts.deferCacheWrites.push(handled(write));
    else await write;
    return result;
  }

  /**
   * DEL every plugin in reverse order, each getting the cached ADD result (0.4.0+). Best effort by
   * spec, but the first failure is returned so the caller can retry; the cache entry stays until
   * a DEL succeeds.
   */
  async delNetworkList(list: NetworkConfigList, rt: RuntimeConf, opts: OpOptions = {}): Promise<void> {
    validateRuntimeConf(rt, false);
    let prev: AnyResult | undefined;
    if (versionAtLeast(list.cniVersion, '0.4.0')) {
      prev = await this.delPrevResult(list, rt, opts.cached);
    }
    for (let i = list.plugins.length - 1; i >= 0; i--) {
      await this.runAttachmentPlugin('DEL', list, list.plugins[i], prev, rt, opts.signal);
    }
    const removal = this.cacheFor(rt).delete(list.name, rt.containerID, rt.ifName);
    if (opts.deferCacheWrites) opts.deferCacheWrites.push(handled(removal));
    else await removal;
  }

  /** CHECK every plugin in order against the cached result. Not defined before 0.4.0. */
  async checkNetworkList(list: NetworkConfigList, rt: RuntimeConf, opts: OpOptions = {}): Promise<void> {
    validateRuntimeConf(rt, true);
    if (!versionAtLeast(list.cniVersion, '0.4.0')) {
      throw new InvalidRequestError(`configuration version "${list.cniVersion}" does not support the CHECK command`);
    }
    if (list.disableCheck) return;
    const prev = await this.getNetworkListCachedResult(list, rt);
    if (!prev) throw new InvalidRequestError(`no cached result for network "${list.name}" container "${rt.containerID}" ifname "${rt.ifName}": CHECK needs a prior ADD`);
    for (const plugin of list.plugins) {
      await this.runAttachmentPlugin('CHECK', list, plugin, prev, rt, opts.signal);
    }
  }

  // ---- GC / STATUS / VERSION ----------------------------------------------------------------

  /**
   * GC (1.1.0): DELs cached attachments of this network that are not in validAttachments (for
   * every version, as libcni does), then, for 1.1.0 lists, sends GC to every plugin. Continues
   * past errors and reports them all.
   */
  async gcNetworkList(list: NetworkConfigList, args: GCArgs, opts: OpOptions = {}): Promise<void> {
    if (list.disableGC) return;
    const valid = new Set(args.validAttachments.map((a) => `${a.containerID}\0${a.ifname}`));
    const errors: Error[] = [];
    for (const att of await this.cache.list()) {
      if (att.networkName !== list.name || valid.has(`${att.containerID}\0${att.ifName}`)) continue;
      const rt = runtimeConfFromCache(att);
      try {
        await this.delNetworkList(list, rt, opts);
      } catch (err) {
        errors.push(new Error(`failed to delete stale attachment ${att.containerID} ${att.ifName}: ${(err as Error).message}`));
      }
    }
    if (versionAtLeast(list.cniVersion, '1.1.0')) {
      for (const plugin of list.plugins) {
        const stdin = this.baseStdin(list, plugin, list.declaredVersion);
        stdin['cni.dev/valid-attachments'] = args.validAttachments.map((a) => ({ containerID: a.containerID, ifname: a.ifname }));
        try {
          if (!(await this.speaks110(list, plugin, 'GC', opts.signal))) continue;
          await this.runPlugin('GC', list, plugin, stdin, { verb: 'GC', path: this.pathEnv() }, opts.signal);
        } catch (err) {
          errors.push(err as Error);
        }
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new MultiError(errors);
  }

  /** STATUS (1.1.0): whether every plugin can serve ADD now. Older lists have no STATUS: ready. */
  async getStatusNetworkList(list: NetworkConfigList, opts: OpOptions = {}): Promise<void> {
    if (!versionAtLeast(list.cniVersion, '1.1.0')) return;
    for (const plugin of list.plugins) {
      if (!(await this.speaks110(list, plugin, 'STATUS', opts.signal))) continue;
      await this.runPlugin('STATUS', list, plugin, this.baseStdin(list, plugin, list.declaredVersion), { verb: 'STATUS', path: this.pathEnv() }, opts.signal);
    }
  }

  /**
   * Whether a plugin of a 1.1.0 list knows the 1.1.0 verbs. A plugin that speaks at most 1.0.0
   * (Debian's reference plugins, for one) runs ADD/DEL in its own version after negotiation, but
   * has no GC or STATUS: sending them gets an unrelated error ("missing CNI_CONTAINERID"), so it
   * is skipped, as a list of its version would be. VERSION answers are kept per binary (path,
   * inode, mtime), so an upgraded plugin is asked again.
   */
  private async speaks110(list: NetworkConfigList, plugin: PluginConfig, verb: Verb, signal?: AbortSignal): Promise<boolean> {
    const site = siteOf(list, plugin, verb);
    const pluginPath = await this.findListPlugin(site);
    const st = await stat(pluginPath);
    const key = `${pluginPath}\0${st.ino}\0${st.mtimeMs}`;
    let info = this.versionInfo.get(key);
    if (!info) {
      info = await getVersionInfo(this.exec, pluginPath, site, signal, this.stderrReporter({ ...site, verb: 'VERSION' }));
      this.versionInfo.set(key, info);
    }
    return info.supportedVersions.some((v) => isSupportedVersion(v) && compareVersions(v, '1.1.0') >= 0);
  }

  /** Where a plugin's binary is (first match in the plugin dirs). */
  getPluginPath(pluginType: string): Promise<string> {
    return this.findPlugin(pluginType);
  }

  async getVersionInfo(pluginType: string, opts: OpOptions = {}): Promise<PluginInfo> {
    const pluginPath = await this.findPlugin(pluginType);
    const site: ErrorSite = { network: '', plugin: pluginType, verb: 'VERSION' };
    return getVersionInfo(this.exec, pluginPath, site, opts.signal, this.stderrReporter(site));
  }

  /**
   * Checks that every plugin exists and speaks the list's version (or one we can negotiate down
   * to). Returns the capabilities the list declares.
   */
  async validateNetworkList(list: NetworkConfigList, opts: OpOptions = {}): Promise<string[]> {
    const errors: Error[] = [];
    const caps = new Set<string>();
    for (const plugin of list.plugins) {
      plugin.capabilities.forEach((c) => caps.add(c));
      try {
        const info = await this.getVersionInfo(plugin.type, opts);
        const wanted = list.declaredVersion || '0.1.0';
        if (!info.supportedVersions.includes(wanted) && !pickVersion(info, list.cniVersion)) {
          throw new InvalidRequestError(
            `plugin ${plugin.type} does not support config version "${wanted}" (supports ${info.supportedVersions.join(', ')})`,
          );
        }
      } catch (err) {
        errors.push(err as Error);
      }
    }
    if (errors.length > 0) throw new MultiError(errors);
    return [...caps].sort();
  }

  // ---- cache accessors ----------------------------------------------------------------------

  /**
   * The cached ADD result, converted to the list's version. A file written by a libcni older than
   * cniCacheV1 holds the bare result JSON; it is read as one, as libcni does.
   */
  async getNetworkListCachedResult(list: NetworkConfigList, rt: RuntimeConf): Promise<AnyResult | undefined> {
    const bytes = await this.cacheFor(rt).read(list.name, rt.containerID, rt.ifName);
    if (!bytes) return undefined;
    try {
      let obj: unknown;
      try {
        obj = parseJSON(bytes);
      } catch {
        obj = undefined;
      }
      const raw = isObject(obj) && obj['kind'] === CACHE_KIND ? obj['result'] : parseJSON(bytes);
      if (raw === undefined || raw === null) return undefined;
      return this.cachedResultOf(raw, list);
    } catch (err) {
      throw new Error(`failed to get network ${JSON.stringify(list.name)} cached result: ${(err as Error).message}`);
    }
  }

  /** An attachment's cache entry (cniCacheV1), read once; undefined when there is none. */
  getCachedAttachment(network: string, rt: RuntimeConf): Promise<CachedAttachment | undefined> {
    return this.cacheFor(rt).get(network, rt.containerID, rt.ifName);
  }

  /** The list and runtime conf an attachment was added with, straight from the cache. */
  async getNetworkListCachedConfig(network: string, rt: RuntimeConf): Promise<{ list: NetworkConfigList; rt: RuntimeConf } | undefined> {
    const entry = await this.getCachedAttachment(network, rt);
    return entry && cachedConfigOf(entry, rt);
  }

  getCachedAttachments(containerID?: string): Promise<CachedAttachment[]> {
    return this.cache.list(containerID);
  }

  // ---- internals ----------------------------------------------------------------------------

  private cacheFor(rt: RuntimeConf): ResultCache {
    return rt.cacheDir ? new ResultCache(rt.cacheDir) : this.cache;
  }

  /** A cached result in the list's version. */
  private cachedResultOf(raw: unknown, list: NetworkConfigList): AnyResult {
    return convertResult(parseResult(raw), list.cniVersion);
  }

  /** DEL's prevResult: the entry already read, else the cache file's. */
  private async delPrevResult(list: NetworkConfigList, rt: RuntimeConf, cached: CachedAttachment | undefined): Promise<AnyResult | undefined> {
    try {
      return cached?.result ? this.cachedResultOf(cached.result, list) : await this.getNetworkListCachedResult(list, rt);
    } catch {
      // A corrupt cache entry must not block DEL: plugins accept an empty prevResult on DEL.
      return undefined;
    }
  }

  private stderrReporter(site: ErrorSite, args: Partial<InvokeArgs> = {}): (stderr: string) => void {
    return (stderr) =>
      this.onStderr?.({ network: site.network, plugin: site.plugin, verb: site.verb, containerID: args.containerID ?? '', ifName: args.ifName ?? '', stderr });
  }

  private pathEnv(): string {
    return this.path.join(':');
  }

  /** The request config of section 3 without the per-attachment keys. */
  private baseStdin(list: NetworkConfigList, plugin: PluginConfig, version: string): Stdin {
    const stdin: Stdin = { cniVersion: version, name: list.name };
    for (const [k, v] of Object.entries(plugin.raw)) {
      // The runtime owns these keys; a config that sets them does not get to forward them.
      if (k === 'cniVersion' || k === 'name' || k === 'capabilities' || k === 'prevResult' || k.startsWith('cni.dev/')) continue;
      stdin[k] = v;
    }
    return stdin;
  }

  /**
   * The stdin and CNI_* environment one plugin of a chain is first run with for this attachment,
   * exactly as runAttachmentPlugin builds them (a plugin that refuses the version is asked again
   * in a negotiated one). `prev` is the previous plugin's result (ADD) or the cached one; without
   * it the stdin has no prevResult. Side-effect free: `podnet explain` shows it.
   */
  pluginInvocation(verb: 'ADD' | 'DEL' | 'CHECK', list: NetworkConfigList, plugin: PluginConfig, rt: RuntimeConf, pluginPath = '', prev?: AnyResult): { stdin: Buffer; env: Record<string, string> } {
    return { stdin: stdinBytes(this.attachmentStdin(list, plugin, this.sendVersion(list, pluginPath), prev, rt)), env: pluginEnv(this.attachmentArgs(verb, rt)) };
  }

  /** The version a plugin of the list is spoken to in: the list's, or one negotiated with that binary before. */
  private sendVersion(list: NetworkConfigList, pluginPath: string): string {
    return this.negotiated.get(`${pluginPath}\0${list.declaredVersion}`) ?? list.declaredVersion;
  }

  private attachmentArgs(verb: 'ADD' | 'DEL' | 'CHECK', rt: RuntimeConf): InvokeArgs {
    return { verb, containerID: rt.containerID, netNS: rt.netNS, ifName: rt.ifName, cniArgs: formatCniArgs(rt.args), path: this.pathEnv() };
  }

  /**
   * `version` is what the plugin is spoken to in: the list's (as libcni selected it), or one
   * negotiated down to. prevResult goes as it is (libcni passes a plugin's answer on unconverted,
   * in whatever version it came), except down-converted for a plugin we negotiated with.
   */
  private attachmentStdin(list: NetworkConfigList, plugin: PluginConfig, version: string, prev: AnyResult | undefined, rt: RuntimeConf): Stdin {
    const stdin = this.baseStdin(list, plugin, version);
    if (prev) stdin['prevResult'] = (version === list.declaredVersion ? prev : convertResult(prev, version)) as unknown as JSONObject;
    const runtimeConfig: JSONObject = {};
    for (const cap of plugin.capabilities) {
      const v = rt.capabilityArgs?.[cap];
      if (v !== undefined) runtimeConfig[cap] = v as JSONObject;
    }
    if (Object.keys(runtimeConfig).length > 0) stdin['runtimeConfig'] = runtimeConfig;
    return stdin;
  }

  /**
   * One plugin of an ADD/DEL/CHECK chain. If the plugin refuses the list's version (code 1), we
   * ask it which versions it speaks and talk to it in the highest one that both sides know,
   * converting prevResult down and its result back up, so an old plugin works in a newer list.
   */
  private async runAttachmentPlugin(
    verb: 'ADD' | 'DEL' | 'CHECK',
    list: NetworkConfigList,
    plugin: PluginConfig,
    prev: AnyResult | undefined,
    rt: RuntimeConf,
    signal: AbortSignal | undefined,
  ): Promise<AnyResult | undefined> {
    const pluginPath = await this.findListPlugin(siteOf(list, plugin, verb));
    const args = this.attachmentArgs(verb, rt);
    let version = this.sendVersion(list, pluginPath);
    let out: unknown;
    try {
      out = await this.runPlugin(verb, list, plugin, this.attachmentStdin(list, plugin, version, prev, rt), args, signal, pluginPath);
    } catch (err) {
      if (!(err instanceof PluginError) || err.code !== ErrorCode.IncompatibleVersion) throw err;
      const site = siteOf(list, plugin, verb);
      const info = await getVersionInfo(this.exec, pluginPath, site, signal, this.stderrReporter({ ...site, verb: 'VERSION' }));
      const picked = pickVersion(info, list.cniVersion, verb === 'CHECK' ? '0.4.0' : undefined);
      if (!picked || picked === version) throw err;
      version = picked;
      this.negotiated.set(`${pluginPath}\0${list.declaredVersion}`, picked);
      out = await this.runPlugin(verb, list, plugin, this.attachmentStdin(list, plugin, version, prev, rt), args, signal, pluginPath);
    }
    if (verb !== 'ADD' || out === undefined) return undefined;
    try {
      const result = parseResult(out, resultVersionOf(out, version));
      // A plugin that answers in another version than it was asked (older plugins do) is taken at
      // its word and its result carried on as it is, as libcni does; one we negotiated down with
      // answers as asked, and is converted back up so the rest of the chain sees the list's version.
      return version === list.declaredVersion ? result : convertResult(result, list.cniVersion);
    } catch (err) {
      throw new PluginError(siteOf(list, plugin, verb), ErrorCode.DecodingFailure, `invalid result: ${(err as Error).message}`);
    }
  }

  private async runPlugin(
    verb: Verb,
    list: NetworkConfigList,
    plugin: PluginConfig,
    stdin: Stdin,
    args: InvokeArgs,
    signal: AbortSignal | undefined,
    knownPath?: string,
  ): Promise<unknown> {
    const site = siteOf(list, plugin, verb);
    const pluginPath = knownPath ?? (await this.findListPlugin(site));
    const started = performance.now();
    const report = (error?: Error): void =>
      this.observer?.({ network: site.network, plugin: site.plugin, verb, containerID: args.containerID ?? '', ifName: args.ifName ?? '', durationMs: performance.now() - started, ...(error ? { error } : {}) });
    try {
      const out = await execPlugin(this.exec, pluginPath, site, stdinBytes(stdin), args, signal);
      report();
      if (out.stderr) this.stderrReporter(site, args)(out.stderr);
      return out.stdout;
    } catch (err) {
      report(err as Error);
      // The binary may have moved (ENOENT, EACCES): look it up again next time.
      if (this.pluginPaths?.get(plugin.type) === pluginPath) this.pluginPaths.delete(plugin.type);
      throw err;
    }
  }
}

/** The list and runtime conf a cache entry was added with; undefined for an entry without its config (a libcni before cniCacheV1). */
export function cachedConfigOf(entry: CachedAttachment, rt: RuntimeConf): { list: NetworkConfigList; rt: RuntimeConf } | undefined {
  if (entry.config.length === 0) return undefined;
  return { list: confListFromConfBytes(entry.config, `cache:${entry.networkName}-${rt.containerID}-${rt.ifName}`), rt: { ...rt, ...runtimeArgsFromCache(entry) } };
}

/** What a plugin reads on stdin. */
function stdinBytes(stdin: Stdin): Buffer {
  return Buffer.from(JSON.stringify(stdin));
}

/** Where a plugin of a list runs, for errors. */
function siteOf(list: NetworkConfigList, plugin: PluginConfig, verb: Verb): ErrorSite {
  const name = plugin.raw['name'];
  return { network: list.name, plugin: plugin.type, verb, ...(typeof name === 'string' && name ? { pluginName: name } : {}) };
}

/**
 * libcni's fixupResultVersion: a result names its own version; one that does not is taken to be
 * in the version it was asked for (none asked: 0.1.0, as libcni's ConfigDecoder reads it).
 */
function resultVersionOf(out: unknown, asked: string): string | undefined {
  const own = isObject(out) ? out['cniVersion'] : undefined;
  if (typeof own === 'string' && own !== '') return undefined;
  return asked === '' ? '0.1.0' : asked;
}

/** The highest version the plugin and we share that is not above the list's version. */
function pickVersion(info: PluginInfo, listVersion: string, atLeast?: string): SpecVersion | undefined {
  let best: SpecVersion | undefined;
  for (const v of info.supportedVersions) {
    if (!isSupportedVersion(v) || compareVersions(v, listVersion) > 0) continue;
    if (atLeast && compareVersions(v, atLeast) < 0) continue;
    if (!best || compareVersions(v, best) > 0) best = v;
  }
  return best;
}

function cacheEntry(list: NetworkConfigList, rt: RuntimeConf, result: AnyResult): CachedAttachment {
  return {
    containerID: rt.containerID,
    ifName: rt.ifName,
    networkName: list.name,
    config: list.bytes,
    ...(rt.netNS ? { netns: rt.netNS } : {}),
    ...(rt.args && rt.args.length ? { cniArgs: rt.args.map(([k, v]) => [k, v] as [string, string]) } : {}),
    ...(rt.capabilityArgs ? { capabilityArgs: { ...rt.capabilityArgs } } : {}),
    result: result as unknown as JSONObject,
  };
}

function runtimeArgsFromCache(att: CachedAttachment): Pick<RuntimeConf, 'args' | 'capabilityArgs'> {
  return {
    ...(att.cniArgs ? { args: att.cniArgs } : {}),
    ...(att.capabilityArgs ? { capabilityArgs: att.capabilityArgs } : {}),
  };
}

/** The runtime conf a cached attachment was added with (GC and recovery DEL from it). */
export function runtimeConfFromCache(att: CachedAttachment): RuntimeConf {
  return { containerID: att.containerID, netNS: att.netns ?? '', ifName: att.ifName, ...runtimeArgsFromCache(att) };
}

import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { LOG_FORMATS, type LogFormat } from './logger.js';
import type { EngineConfig, RuntimeHandlerConfig } from '../engine/types.js';
import { DurationError, parseDuration } from '../util/duration.js';

export type { CNISettings, IPPref, RuntimeHandlerConfig } from '../engine/types.js';
export type CgroupDriver = 'systemd' | 'cgroupfs';

/** podnetd's config: the engine's settings plus the daemon's own. */
export interface DaemonConfig extends EngineConfig {
  socket: string;
  stateDir: string;
  netnsDir: string;
  logLevel: string;
  /** "auto": human-readable lines when stdout is a terminal, JSON lines otherwise. */
  logFormat: LogFormat;
  cgroupDriver: CgroupDriver;
  gcIntervalMs: number;
  metricsAddress: string;
  attachmentsDir: string;
  /**
   * Where plugins are forked: "helper" (podnet-spawner, the daemon never forks per plugin) or
   * "inline" (child_process in the daemon; the fallback when the helper is not built).
   */
  spawner: 'helper' | 'inline';
  /** The CNI door (Multus' thick-plugin protocol) for containerd / CRI-O. */
  cniServer: { socket: string };
}

/**
 * Handler name → its config, with no prototype: a pod's runtime_handler is looked up here, and a
 * handler called "constructor" or "__proto__" must be just a name (declared or not).
 */
function handlerTable(from: Record<string, RuntimeHandlerConfig> = {}): Record<string, RuntimeHandlerConfig> {
  return Object.assign(Object.create(null) as Record<string, RuntimeHandlerConfig>, from);
}

/** The one place podnet's defaults live: podnetd, the podnet CLI and its cnitool commands read them. */
export function defaultConfig(): DaemonConfig {
  return {
    socket: '/run/podnet/podnet.sock',
    stateDir: '/var/lib/podnet',
    netnsDir: '/var/run/netns',
    logLevel: 'info',
    logFormat: 'auto',
    defaultRuntimeHandler: 'runc',
    cgroupDriver: 'systemd',
    maxConcurrentSetups: 32,
    gcIntervalMs: 10 * 60_000,
    cleanupTimeoutMs: 60_000,
    metricsAddress: '',
    attachmentsDir: '/etc/podnet/attachments.d',
    spawner: 'helper',
    cni: {
      binDirs: ['/opt/cni/bin', '/usr/lib/cni'],
      confDir: '/etc/cni/net.d',
      cacheDir: '/var/lib/cni',
      maxConfNum: 1,
      confTemplate: '',
      ipPref: 'ipv4',
      setupSerially: false,
      pluginTimeoutMs: 60_000,
    },
    cniServer: { socket: '/run/podnet/cni/podnet-cni.sock' },
    runtimes: handlerTable(),
  };
}

export class ConfigFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigFileError';
  }
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Reads typed keys from one TOML table and refuses any it does not know. */
class TableReader {
  private readonly seen = new Set<string>();
  constructor(
    private readonly t: Table,
    private readonly where: string,
  ) {}

  private key(k: string): string {
    return this.where ? `${this.where}.${k}` : k;
  }

  private take(k: string): unknown {
    this.seen.add(k);
    return this.t[k];
  }

  str(k: string, apply: (v: string) => void): void {
    const v = this.take(k);
    if (v === undefined) return;
    if (typeof v !== 'string') throw new ConfigFileError(`${this.key(k)}: must be a string`);
    apply(v);
  }

  oneOf<T extends string>(k: string, allowed: readonly T[], apply: (v: T) => void): void {
    this.str(k, (v) => {
      if (!(allowed as readonly string[]).includes(v)) throw new ConfigFileError(`${this.key(k)}: must be one of ${allowed.join(', ')}, not "${v}"`);
      apply(v as T);
    });
  }

  int(k: string, min: number, max: number, apply: (v: number) => void): void {
    const v = this.take(k);
    if (v === undefined) return;
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      throw new ConfigFileError(`${this.key(k)}: must be an integer from ${min} to ${max}`);
    }
    apply(n);
  }

  bool(k: string, apply: (v: boolean) => void): void {
    const v = this.take(k);
    if (v === undefined) return;
    if (typeof v !== 'boolean') throw new ConfigFileError(`${this.key(k)}: must be true or false`);
    apply(v);
  }

  duration(k: string, apply: (ms: number) => void): void {
    const v = this.take(k);
    if (v === undefined) return;
    if (typeof v === 'number' || typeof v === 'bigint') {
      // A bare number is seconds, as a reader of containerd's config might write it.
      apply(Number(v) * 1000);
      return;
    }
    if (typeof v !== 'string') throw new ConfigFileError(`${this.key(k)}: must be a duration string`);
    let ms: number;
    try {
      ms = parseDuration(v, this.key(k));
    } catch (err) {
      throw err instanceof DurationError ? new ConfigFileError(err.message) : err;
    }
    apply(ms);
  }

  strList(k: string, apply: (v: string[]) => void): void {
    const v = this.take(k);
    if (v === undefined) return;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ConfigFileError(`${this.key(k)}: must be a list of strings`);
    apply(v);
  }

  table(k: string): Table | undefined {
    const v = this.take(k);
    if (v === undefined) return undefined;
    if (!isTable(v)) throw new ConfigFileError(`${this.key(k)}: must be a table`);
    return v;
  }

  done(): void {
    for (const k of Object.keys(this.t)) {
      if (!this.seen.has(k)) throw new ConfigFileError(`unknown config key "${this.key(k)}"`);
    }
  }
}

/** Parses podnetd's TOML. Keys follow containerd's CRI config where one exists. */
export function parseConfig(text: string, base: DaemonConfig = defaultConfig()): DaemonConfig {
  let doc: Table;
  try {
    doc = parseToml(text);
  } catch (err) {
    throw new ConfigFileError(`invalid TOML: ${(err as Error).message}`);
  }
  const cfg: DaemonConfig = structuredClone(base);
  // structuredClone gives the table a prototype again.
  cfg.runtimes = handlerTable(cfg.runtimes);
  const top = new TableReader(doc, '');
  top.str('socket', (v) => (cfg.socket = v));
  top.str('state_dir', (v) => (cfg.stateDir = v));
  top.str('netns_dir', (v) => (cfg.netnsDir = v));
  top.oneOf('log_level', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], (v) => (cfg.logLevel = v));
  top.oneOf('log_format', LOG_FORMATS, (v) => (cfg.logFormat = v));
  top.str('default_runtime_handler', (v) => (cfg.defaultRuntimeHandler = v));
  top.oneOf('cgroup_driver', ['systemd', 'cgroupfs'], (v) => (cfg.cgroupDriver = v));
  top.int('max_concurrent_setups', 1, 4096, (v) => (cfg.maxConcurrentSetups = v));
  top.duration('gc_interval', (v) => (cfg.gcIntervalMs = v));
  top.duration('cleanup_timeout', (v) => (cfg.cleanupTimeoutMs = v));
  top.str('metrics_address', (v) => (cfg.metricsAddress = v));
  top.str('attachments_dir', (v) => (cfg.attachmentsDir = v));
  top.oneOf('spawner', ['helper', 'inline'] as const, (v) => (cfg.spawner = v));

  const cniTable = top.table('cni');
  if (cniTable) {
    const c = new TableReader(cniTable, 'cni');
    c.strList('bin_dirs', (v) => (cfg.cni.binDirs = v));
    // containerd's older single-dir key.
    c.str('bin_dir', (v) => (cfg.cni.binDirs = [v]));
    c.str('conf_dir', (v) => (cfg.cni.confDir = v));
    c.str('cache_dir', (v) => (cfg.cni.cacheDir = v));
    c.int('max_conf_num', 0, 64, (v) => (cfg.cni.maxConfNum = v));
    c.str('conf_template', (v) => (cfg.cni.confTemplate = v));
    c.oneOf('ip_pref', ['ipv4', 'ipv6', 'cni'], (v) => (cfg.cni.ipPref = v));
    c.bool('setup_serially', (v) => (cfg.cni.setupSerially = v));
    c.duration('plugin_timeout', (v) => (cfg.cni.pluginTimeoutMs = v));
    c.done();
  }
  const cniServer = top.table('cni_server');
  if (cniServer) {
    const c = new TableReader(cniServer, 'cni_server');
    c.str('socket', (v) => (cfg.cniServer.socket = v));
    c.done();
  }
  const runtimes = top.table('runtimes');
  if (runtimes) {
    for (const [name, value] of Object.entries(runtimes)) {
      if (!isTable(value)) throw new ConfigFileError(`runtimes.${name}: must be a table`);
      const r = new TableReader(value, `runtimes.${name}`);
      const h: RuntimeHandlerConfig = {};
      r.str('cni_conf_dir', (v) => (h.cniConfDir = v));
      r.int('cni_max_conf_num', 0, 64, (v) => (h.cniMaxConfNum = v));
      r.done();
      cfg.runtimes[name] = h;
    }
  }
  top.done();
  return cfg;
}

export async function loadConfigFile(path: string, base?: DaemonConfig): Promise<DaemonConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigFileError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let cfg: DaemonConfig;
  try {
    cfg = parseConfig(text, base);
  } catch (err) {
    throw new ConfigFileError(`${path}: ${(err as Error).message}`);
  }
  return resolvePaths(cfg, dirname(resolve(path)));
}

/** Relative paths in a config file are relative to the file, not to wherever the daemon was started. */
export function resolvePaths(cfg: DaemonConfig, baseDir: string): DaemonConfig {
  const abs = (p: string): string => (p === '' || isAbsolute(p) ? p : resolve(baseDir, p));
  cfg.socket = abs(cfg.socket);
  cfg.stateDir = abs(cfg.stateDir);
  cfg.netnsDir = abs(cfg.netnsDir);
  cfg.attachmentsDir = abs(cfg.attachmentsDir);
  cfg.cni.binDirs = cfg.cni.binDirs.map(abs);
  cfg.cni.confDir = abs(cfg.cni.confDir);
  cfg.cni.cacheDir = abs(cfg.cni.cacheDir);
  cfg.cni.confTemplate = abs(cfg.cni.confTemplate);
  cfg.cniServer.socket = abs(cfg.cniServer.socket);
  for (const h of Object.values(cfg.runtimes)) if (h.cniConfDir) h.cniConfDir = abs(h.cniConfDir);
  return cfg;
}

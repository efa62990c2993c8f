import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';

/** A runtime handler's own networks (containerd's [plugins.cri.containerd.runtimes.<name>]). */
export interface RuntimeHandlerConfig {
  cniConfDir?: string;
  cniMaxConfNum?: number;
}

export type IPPref = 'ipv4' | 'ipv6' | 'cni';
export type CgroupDriver = 'systemd' | 'cgroupfs';

export interface CNISettings {
  binDirs: string[];
  confDir: string;
  cacheDir: string;
  maxConfNum: number;
  confTemplate: string;
  ipPref: IPPref;
  setupSerially: boolean;
  pluginTimeoutMs: number;
}

export interface DaemonConfig {
  socket: string;
  stateDir: string;
  netnsDir: string;
  logLevel: string;
  defaultRuntimeHandler: string;
  cgroupDriver: CgroupDriver;
  /** Bound on RunPodSandbox/StopPodSandbox network work running at once. */
  maxConcurrentSetups: number;
  gcIntervalMs: number;
  /** Teardown after a failure, or a stop whose client gave up, gets this long on its own. */
  cleanupTimeoutMs: number;
  metricsAddress: string;
  attachmentsDir: string;
  /**
   * Where plugins are forked: "helper" (podnet-spawner, the daemon never forks per plugin) or
   * "inline" (child_process in the daemon; the fallback when the helper is not built).
   */
  spawner: 'helper' | 'inline';
  cni: CNISettings;
  /** The CNI door (Multus' thick-plugin protocol) for containerd / CRI-O; not served until wired to the engine. */
  cniServer: { socket: string };
  runtimes: Record<string, RuntimeHandlerConfig>;
}

export function defaultConfig(): DaemonConfig {
  return {
    socket: '/run/podnet/podnet.sock',
    stateDir: '/var/lib/podnet',
    netnsDir: '/var/run/netns',
    logLevel: 'info',
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
    runtimes: {},
  };
}

export class ConfigFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigFileError';
  }
}

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "30s", "10m", "500ms", "1h": Go-style durations as containerd's config uses them. */
export function parseDuration(v: string, key: string): number {
  const m = DURATION_RE.exec(v.trim());
  if (!m) throw new ConfigFileError(`${key}: invalid duration "${v}" (use e.g. "500ms", "30s", "10m")`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
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
    apply(parseDuration(v, this.key(k)));
  }

  strList(k: string, apply: (v: string[]) => void): void {
    const v = this.take(k);
    if (v === undefined) return;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ConfigFileError(`${this.key(k)}: must be a list of strings`);
    apply(v as string[]);
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
    doc = parseToml(text) as Table;
  } catch (err) {
    throw new ConfigFileError(`invalid TOML: ${(err as Error).message}`);
  }
  const cfg: DaemonConfig = structuredClone(base);
  const top = new TableReader(doc, '');
  top.str('socket', (v) => (cfg.socket = v));
  top.str('state_dir', (v) => (cfg.stateDir = v));
  top.str('netns_dir', (v) => (cfg.netnsDir = v));
  top.oneOf('log_level', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], (v) => (cfg.logLevel = v));
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

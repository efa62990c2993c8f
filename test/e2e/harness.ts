// End-to-end harness: a real podnetd (dist/, spawned as `node bin/podnetd --config FILE`) serving
// on a real unix socket, driven by the generated grpc-js client, with real CNI plugins.
//
// Everything a test makes (temp root, bridges, listener processes, daemons) is registered in one
// cleanup stack; call disposeAll() in afterEach. Cleanup order is newest first, so a daemon (and
// its pods) goes before the bridges its networks used, and those before the temp root.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { execa, type ResultPromise } from 'execa';
import {
  ListPodSandboxRequest,
  PodSandboxConfig,
  PodSandboxStatusRequest,
  RemovePodSandboxRequest,
  RunPodSandboxRequest,
  RuntimeConfigRequest,
  RuntimeServiceClient,
  RuntimeServiceService,
  StatusRequest,
  StopPodSandboxRequest,
  UpdateRuntimeConfigRequest,
  VersionRequest,
  type DeepPartial,
  type PodSandbox,
  type PodSandboxFilter,
  type PodSandboxStatusResponse,
  type RuntimeConfigResponse,
  type StatusResponse,
  type VersionResponse,
} from '../../src/gen/runtime/v1/api.js';
import { socketAlive } from '../../src/cri/server.js';
import { expect } from 'vitest';
import { Cleanup, delHostLink, linkExists, natRulesMatching, pidAlive, randomHex, sh, uniqueSubnet, usedSubnetPrefixes, type Subnet as TestSubnet } from '../helpers/env.js';

export const REPO_ROOT: string = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
const DAEMON_BIN = join(REPO_ROOT, 'bin', 'podnetd');
const DAEMON_JS = join(REPO_ROOT, 'dist', 'cmd', 'podnetd.js');

/** Default per-RPC deadline: longer than any plugin run in these tests should take. */
const RPC_TIMEOUT_MS = 60_000;
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;

// ---- cleanup registry ---------------------------------------------------------------------------

const registry = new Cleanup();
/** Every temp root and bridge this process made, for the final leak check. */
export const createdRoots = new Set<string>();
export const createdBridges = new Set<string>();
export const startedPids = new Set<number>();

/** Registers an undo action on the harness's cleanup stack (run by disposeAll, newest first). */
export function onCleanup(fn: () => unknown, what: string): void {
  registry.push(fn, what);
}

/** Runs every registered cleanup, newest first; returns the failures (a test should expect []). */
export function disposeAll(): Promise<Error[]> {
  return registry.run();
}

/** nsfs mount points below dir (from /proc/self/mountinfo). */
export async function nsfsMountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    const mountPoint = f[4];
    if (sep > 0 && mountPoint && (mountPoint === dir || mountPoint.startsWith(`${dir}/`)) && f[sep + 1] === 'nsfs') out.push(mountPoint);
  }
  return out;
}

/**
 * A fresh temp root (mkdtemp), removed at cleanup. If a namespace mount is still below it by then,
 * it is unmounted so the host is left clean, and the cleanup reports it as a leak.
 */
export async function newRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'podnet-e2e-'));
  createdRoots.add(root);
  onCleanup(async () => {
    const leaked = await nsfsMountsUnder(root);
    for (const m of leaked) await sh('umount', ['-l', m]);
    await rm(root, { recursive: true, force: true });
    if (leaked.length > 0) throw new Error(`leaked network namespace mounts: ${leaked.join(', ')}`);
  }, `rm -r ${root}`);
  return root;
}

// ---- networks -----------------------------------------------------------------------------------

// One allocator for the whole test process: the e2e files also use test/helpers' subnets, and two
// allocators could hand out the same /24 twice.
export { uniqueSubnet, usedSubnetPrefixes, type Subnet as TestSubnet } from '../helpers/env.js';

/** Whether ip (dotted quad) is inside the /24 of s. */
export function inSubnet(ip: string, s: TestSubnet): boolean {
  return ip.startsWith(`${s.prefix}.`) && ip !== s.gateway;
}

/** A unique bridge name `pn<10 hex>` (12 chars), deleted at cleanup. */
export function uniqueBridge(): string {
  const name = `pn${randomHex(10)}`;
  createdBridges.add(name);
  onCleanup(() => delHostLink(name), `ip link del ${name}`);
  return name;
}

export interface BridgeConflistOptions {
  bridge: string;
  subnet: string;
  /** host-local's dataDir: always inside a temp root. */
  dataDir: string;
  portmap?: boolean;
  bandwidth?: boolean;
  isGateway?: boolean;
  cniVersion?: string;
}

/** A bridge + host-local network list (optionally with portmap / bandwidth), as JSON text. */
export function bridgeConflist(name: string, o: BridgeConflistOptions): string {
  const plugins: Array<Record<string, unknown>> = [
    {
      type: 'bridge',
      bridge: o.bridge,
      isGateway: o.isGateway ?? true,
      ipMasq: false,
      ipam: { type: 'host-local', dataDir: o.dataDir, ranges: [[{ subnet: o.subnet }]] },
    },
  ];
  if (o.portmap) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  if (o.bandwidth) plugins.push({ type: 'bandwidth', capabilities: { bandwidth: true } });
  return JSON.stringify({ cniVersion: o.cniVersion ?? '1.0.0', name, plugins }, null, 2);
}

export interface TestNetwork {
  name: string;
  bridge: string;
  subnet: TestSubnet;
  dataDir: string;
  /** The conflist JSON. */
  text: string;
}

/** A network with a unique name, bridge and subnet; host-local state under <root>/ipam. */
export function testNetwork(root: string, opts: { portmap?: boolean; bandwidth?: boolean; name?: string } = {}): TestNetwork {
  const name = opts.name ?? `pn-net-${randomHex(8)}`;
  const bridge = uniqueBridge();
  const subnet = uniqueSubnet();
  const dataDir = join(root, 'ipam');
  const text = bridgeConflist(name, { bridge, subnet: subnet.subnet, dataDir, ...(opts.portmap ? { portmap: true } : {}), ...(opts.bandwidth ? { bandwidth: true } : {}) });
  return { name, bridge, subnet, dataDir, text };
}

// ---- pod configs --------------------------------------------------------------------------------

/** A PodSandboxConfig with a unique name and uid; overrides are merged (metadata field by field). */
export function podConfig(overrides: DeepPartial<PodSandboxConfig> = {}): PodSandboxConfig {
  const suffix = randomHex(8);
  const { metadata, ...rest } = overrides;
  return PodSandboxConfig.fromPartial({
    logDirectory: `/var/log/pods/e2e_pod-${suffix}`,
    labels: { app: 'e2e', run: suffix },
    annotations: { 'podnet.test/owner': 'e2e' },
    linux: {},
    ...rest,
    metadata: { name: `pod-${suffix}`, namespace: 'e2e', uid: `uid-${suffix}`, attempt: 0, ...metadata },
  });
}

// ---- RPC errors ---------------------------------------------------------------------------------

/** A failed RPC: the gRPC status code and the server's message. */
export class RpcError extends Error {
  constructor(
    readonly rpc: string,
    readonly code: status,
    readonly details: string,
  ) {
    super(`${rpc}: ${status[code] ?? code}: ${details}`);
    this.name = 'RpcError';
  }
}

/** Awaits p and returns the RpcError it rejected with; fails if it resolved or threw something else. */
export async function rpcError(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RpcError) return err;
    throw err;
  }
  throw new Error('expected the RPC to fail, but it succeeded');
}

type Service = typeof RuntimeServiceService;
type UnaryKey = { [K in keyof Service]: Service[K]['responseStream'] extends false ? (Service[K]['requestStream'] extends false ? K : never) : never }[keyof Service];
type ReqOf<K extends UnaryKey> = Parameters<Service[K]['requestSerialize']>[0];
type ResOf<K extends UnaryKey> = ReturnType<Service[K]['responseDeserialize']>;

function callDeadline(timeoutMs: number): { deadline: Date } {
  return { deadline: new Date(Date.now() + timeoutMs) };
}

function toRpcError(rpc: string, err: ServiceError): RpcError {
  return new RpcError(rpc, err.code, err.details || err.message);
}

// ---- the daemon ---------------------------------------------------------------------------------

export type TomlValue = string | number | boolean | string[];

export interface DaemonOptions {
  /** A root from newRoot(); a fresh one otherwise. */
  root?: string;
  /** Default <root>/net.d (created). */
  confDir?: string;
  /** Files written into confDir before the daemon starts (name → content). */
  confFiles?: Record<string, string>;
  /** [runtimes.<name>] tables (keys as in the TOML: cni_conf_dir, cni_max_conf_num). */
  runtimes?: Record<string, Record<string, TomlValue>>;
  /** Extra top-level keys (cgroup_driver, default_runtime_handler...). */
  top?: Record<string, TomlValue>;
  /** Extra [cni] keys (conf_template, ip_pref...). Replaces a default key of the same name. */
  cni?: Record<string, TomlValue>;
  /** Default <root>/run/podnet.sock. */
  socket?: string;
  /** [cni_server] keys; the CNI door's socket defaults to <root>/run/cni/podnet-cni.sock. */
  cniServer?: Record<string, TomlValue>;
  /**
   * Wraps the daemon's command line (e.g. a private containerd's mountNsCommand(), where its
   * CNI_NETNS mounts exist). The wrapper must exec the daemon, so the pid stays the daemon's.
   */
  wrap?: (cmd: string, args: string[]) => [string, string[]];
  /** Default "30s". */
  pluginTimeout?: string;
  /** Default "info". */
  logLevel?: string;
}

function tomlValue(v: TomlValue): string {
  if (Array.isArray(v)) return `[${v.map((x) => JSON.stringify(x)).join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

function tomlTable(entries: Record<string, TomlValue>): string {
  return Object.entries(entries)
    .map(([k, v]) => `${k} = ${tomlValue(v)}\n`)
    .join('');
}

/** The daemon would not start (or exited before it served). */
export class DaemonStartError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | undefined,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'DaemonStartError';
  }
}

export type LogLine = Record<string, unknown>;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function assertBuilt(): void {
  if (!existsSync(DAEMON_JS)) {
    throw new Error(`${DAEMON_JS} is missing: run make build (make test builds first) before the e2e tests`);
  }
}

/** Typed promise wrappers for the RuntimeService RPCs; failures reject with RpcError. */
export class Rpc {
  constructor(private readonly client: () => RuntimeServiceClient) {}


  /** Any unary RuntimeService RPC by its client method name; the request must be built with fromPartial. */
  call<K extends UnaryKey>(key: K, req: ReqOf<K>, timeoutMs = RPC_TIMEOUT_MS): Promise<ResOf<K>> {
    const def = RuntimeServiceService[key];
    const rpc = def.path.slice(def.path.lastIndexOf('/') + 1);
    const serialize = def.requestSerialize as (v: ReqOf<K>) => Buffer;
    const deserialize = def.responseDeserialize as (b: Buffer) => ResOf<K>;
    return new Promise((resolve, reject) => {
      this.client().makeUnaryRequest(def.path, serialize, deserialize, req, new Metadata(), callDeadline(timeoutMs), (err, res) => {
        if (err) reject(toRpcError(rpc, err));
        else if (res === undefined) reject(new RpcError(rpc, status.INTERNAL, 'empty response'));
        else resolve(res);
      });
    });
  }

  /**
   * Sends bytes exactly as given (no serialization) to a method path, e.g. a recorded crictl
   * request, and decodes the response with deserialize.
   */
  raw<Res>(path: string, bytes: Buffer, deserialize: (b: Buffer) => Res, timeoutMs = RPC_TIMEOUT_MS): Promise<Res> {
    const rpc = path.slice(path.lastIndexOf('/') + 1);
    return new Promise((resolve, reject) => {
      this.client().makeUnaryRequest(path, (b: Buffer) => b, deserialize, bytes, new Metadata(), callDeadline(timeoutMs), (err, res) => {
        if (err) reject(toRpcError(rpc, err));
        else if (res === undefined) reject(new RpcError(rpc, status.INTERNAL, 'empty response'));
        else resolve(res);
      });
    });
  }

  version(): Promise<VersionResponse> {
    return this.call('version', VersionRequest.fromPartial({}));
  }

  /** RunPodSandbox; returns the sandbox id. */
  async run(config: PodSandboxConfig, handler = ''): Promise<string> {
    const res = await this.call('runPodSandbox', RunPodSandboxRequest.fromPartial({ config, runtimeHandler: handler }));
    return res.podSandboxId;
  }

  status(id: string, verbose = false): Promise<PodSandboxStatusResponse> {
    return this.call('podSandboxStatus', PodSandboxStatusRequest.fromPartial({ podSandboxId: id, verbose }));
  }

  /** The `info.info` JSON of a verbose PodSandboxStatus. */
  async statusInfo(id: string): Promise<Record<string, unknown>> {
    const res = await this.status(id, true);
    return JSON.parse(res.info['info'] ?? '{}') as Record<string, unknown>;
  }

  /** The sandbox's network namespace path (verbose info netNamespacePath). */
  async netnsPath(id: string): Promise<string> {
    const p = (await this.statusInfo(id))['netNamespacePath'];
    if (typeof p !== 'string') throw new Error(`no netNamespacePath in the verbose status of ${id}`);
    return p;
  }

  async list(filter?: DeepPartial<PodSandboxFilter>): Promise<PodSandbox[]> {
    const res = await this.call('listPodSandbox', ListPodSandboxRequest.fromPartial(filter ? { filter } : {}));
    return res.items;
  }

  async stop(id: string): Promise<void> {
    await this.call('stopPodSandbox', StopPodSandboxRequest.fromPartial({ podSandboxId: id }));
  }

  async remove(id: string): Promise<void> {
    await this.call('removePodSandbox', RemovePodSandboxRequest.fromPartial({ podSandboxId: id }));
  }

  runtimeStatus(verbose = false): Promise<StatusResponse> {
    return this.call('status', StatusRequest.fromPartial({ verbose }));
  }

  async updateRuntimeConfig(podCidr: string): Promise<void> {
    await this.call('updateRuntimeConfig', UpdateRuntimeConfigRequest.fromPartial({ runtimeConfig: { networkConfig: { podCidr } } }));
  }

  runtimeConfig(): Promise<RuntimeConfigResponse> {
    return this.call('runtimeConfig', RuntimeConfigRequest.fromPartial({}));
  }

}

export class Daemon {
  readonly root: string;
  readonly configFile: string;
  readonly socket: string;
  readonly confDir: string;
  readonly stateDir: string;
  readonly netnsDir: string;
  readonly cacheDir: string;
  /** host-local dataDir of the networks testNetwork() makes for this root. */
  readonly ipamDir: string;
  /** Parsed JSON log lines of every run of the daemon (restarts append). */
  readonly logs: LogLine[] = [];
  /** Non-JSON stdout and all stderr. */
  stderr = '';
  /** The CNI door's socket ([cni_server] socket). */
  cniSocket = '';
  /** Wraps the command line (DaemonOptions.wrap). */
  wrap: ((cmd: string, args: string[]) => [string, string[]]) | undefined;
  private proc: ResultPromise | undefined;
  private exit: Promise<number> | undefined;
  private exited = true;
  private grpc: RuntimeServiceClient | undefined;
  private disposed = false;
  /** The RPC wrappers (run, status, list, stop, remove, runtimeStatus, version, ...). */
  readonly rpc: Rpc = new Rpc(() => this.client);

  constructor(root: string, configFile: string, socket: string, confDir: string) {
    this.root = root;
    this.configFile = configFile;
    this.socket = socket;
    this.confDir = confDir;
    this.stateDir = join(root, 'state');
    this.netnsDir = join(root, 'netns');
    this.cacheDir = join(root, 'cache');
    this.ipamDir = join(root, 'ipam');
  }

  get pid(): number {
    const pid = this.proc?.pid;
    if (pid === undefined) throw new Error('daemon not running');
    return pid;
  }

  get running(): boolean {
    return !this.exited;
  }

  get client(): RuntimeServiceClient {
    if (!this.grpc) throw new Error('daemon not running');
    return this.grpc;
  }

  /** Spawns the daemon and waits until it serves (log line "podnetd serving" and Version answers). */
  async spawn(): Promise<void> {
    assertBuilt();
    const [cmd, args] = this.wrap ? this.wrap(process.execPath, [DAEMON_BIN, '--config', this.configFile]) : [process.execPath, [DAEMON_BIN, '--config', this.configFile]];
    const child = execa(cmd, args, {
      reject: false,
      buffer: false,
      stdin: 'ignore',
      cwd: REPO_ROOT,
    });
    this.proc = child;
    this.exited = false;
    if (child.pid !== undefined) startedPids.add(child.pid);
    let served = false;
    let pending = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!line.trim()) continue;
        try {
          const obj = JSON.parse(line) as LogLine;
          this.logs.push(obj);
          if (obj['msg'] === 'podnetd serving') served = true;
        } catch {
          this.stderr += `${line}\n`;
        }
      }
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exit = child.then((r) => {
      this.exited = true;
      return r.exitCode ?? (r.signal ? 128 : 1);
    });

    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (this.exited) {
        const code = await this.exit;
        throw new DaemonStartError(`podnetd exited with ${code} before serving: ${this.stderr.trim()}`, code, this.stderr);
      }
      if (served && (await socketAlive(this.socket))) break;
      if (Date.now() > deadline) {
        await this.kill();
        throw new DaemonStartError(`podnetd did not serve on ${this.socket} within ${START_TIMEOUT_MS} ms: ${this.stderr.trim()}`, undefined, this.stderr);
      }
      await sleep(25);
    }
    this.grpc = new RuntimeServiceClient(`unix://${this.socket}`, credentials.createInsecure());
    await this.rpc.version();
  }

  private closeClient(): void {
    this.grpc?.close();
    this.grpc = undefined;
  }

  /** SIGTERM, wait for exit (SIGKILL after 15 s); returns the exit code. */
  async stop(): Promise<number> {
    this.closeClient();
    if (this.exited || !this.proc) return this.exit ? await this.exit : 0;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc?.kill('SIGKILL'), STOP_TIMEOUT_MS);
    try {
      return await this.exit!;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL and wait for the process to be gone. */
  async kill(): Promise<void> {
    this.closeClient();
    if (this.exited || !this.proc) return;
    this.proc.kill('SIGKILL');
    await this.exit;
  }

  /** Stops the daemon if it runs (SIGTERM) and starts it again with the same config. */
  async restart(): Promise<void> {
    await this.stop();
    await this.spawn();
  }

  /** Cleanup: stop+remove every sandbox the daemon knows, then SIGTERM. Idempotent. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const errors: string[] = [];
    if (!this.exited && this.grpc) {
      try {
        for (const p of await this.rpc.list()) {
          await this.rpc.stop(p.id).catch((e: Error) => errors.push(`stop ${p.id}: ${e.message}`));
          await this.rpc.remove(p.id).catch((e: Error) => errors.push(`remove ${p.id}: ${e.message}`));
        }
      } catch (err) {
        errors.push(`list: ${(err as Error).message}`);
      }
    }
    const wasRunning = !this.exited;
    const code = await this.stop();
    if (errors.length > 0) throw new Error(`daemon cleanup: ${errors.join('; ')}`);
    if (wasRunning && code !== 0) throw new Error(`podnetd exited with ${code} on SIGTERM: ${this.stderr.trim()}`);
  }

  // ---- on-disk state ------------------------------------------------------------------------

  /** Files in the netns dir. */
  async netnsFiles(): Promise<string[]> {
    return listDir(this.netnsDir);
  }

  /** CNI result cache entries (<cacheDir>/results). */
  async cacheEntries(): Promise<string[]> {
    return listDir(join(this.cacheDir, 'results'));
  }

  /** Writes a file into the default conf dir. */
  async writeConf(name: string, text: string): Promise<void> {
    await mkdir(this.confDir, { recursive: true });
    await writeFile(join(this.confDir, name), text);
  }
}

/** A dir's entries, sorted; a missing dir is empty. */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Writes the config file for opts under root and returns the Daemon (not yet started). */
export async function prepareDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const root = opts.root ?? (await newRoot());
  const confDir = opts.confDir ?? join(root, 'net.d');
  const socket = opts.socket ?? join(root, 'run', 'podnet.sock');
  await mkdir(confDir, { recursive: true });
  for (const [name, text] of Object.entries(opts.confFiles ?? {})) await writeFile(join(confDir, name), text);
  const top: Record<string, TomlValue> = {
    socket,
    state_dir: join(root, 'state'),
    netns_dir: join(root, 'netns'),
    log_level: opts.logLevel ?? 'info',
    // Never read the host's /etc/podnet.
    attachments_dir: join(root, 'attachments.d'),
    ...opts.top,
  };
  const cni: Record<string, TomlValue> = {
    conf_dir: confDir,
    cache_dir: join(root, 'cache'),
    bin_dirs: ['/opt/cni/bin', '/usr/lib/cni'],
    plugin_timeout: opts.pluginTimeout ?? '30s',
    ...opts.cni,
  };
  const cniServer: Record<string, TomlValue> = { socket: join(root, 'run', 'cni', 'podnet-cni.sock'), ...opts.cniServer };
  let text = `# written by test/e2e/harness.ts\n${tomlTable(top)}\n[cni]\n${tomlTable(cni)}\n[cni_server]\n${tomlTable(cniServer)}`;
  for (const [name, table] of Object.entries(opts.runtimes ?? {})) {
    text += `\n[runtimes.${JSON.stringify(name)}]\n${tomlTable(table)}`;
  }
  const configFile = join(root, `podnetd-${randomHex(6)}.toml`);
  await writeFile(configFile, text);
  const d = new Daemon(root, configFile, socket, confDir);
  d.cniSocket = String(cniServer['socket']);
  if (opts.wrap) d.wrap = opts.wrap;
  return d;
}

/** prepareDaemon + spawn; the daemon is disposed (pods stopped and removed, SIGTERM) at cleanup. */
export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const d = await prepareDaemon(opts);
  onCleanup(() => d.dispose(), `podnetd ${d.configFile}`);
  await d.spawn();
  return d;
}

/** Whether any of the given bridges still exists on the host. */
export async function existingBridges(names: Iterable<string>): Promise<string[]> {
  const out: string[] = [];
  for (const n of names) if (await linkExists(undefined, n)) out.push(n);
  return out;
}

/**
 * The last test of an e2e file: every daemon, root dir, bridge, namespace mount, process and NAT
 * rule the file made is gone.
 */
export async function expectNothingLeft(extraPids: Iterable<number> = []): Promise<void> {
  expect(await disposeAll()).toEqual([]);
  expect(createdRoots.size).toBeGreaterThan(0);
  for (const root of createdRoots) {
    expect(await nsfsMountsUnder(root), root).toEqual([]);
    expect(existsSync(root), root).toBe(false);
  }
  expect(await existingBridges(createdBridges)).toEqual([]);
  for (const pid of [...startedPids, ...extraPids]) expect(await pidAlive(pid), `pid ${pid}`).toBe(false);
  const nat = await natRulesMatching('');
  for (const prefix of usedSubnetPrefixes()) expect(nat.filter((l) => l.includes(`${prefix}.`)), prefix).toEqual([]);
}

// A private containerd for tests: Debian's containerd 1.6 + runc, each run with its own root,
// state, sockets, config and CNI dirs, started inside private mount and pid namespaces with tmpfs
// over /run and /var/lib, so nothing of the host's /run/containerd, /var/lib/containerd,
// /var/lib/cni (go-cni's cache dir, which containerd 1.6 cannot move) or /var/run/netns is
// touched, and nothing it starts outlives the test process. The pod namespaces are bind-mounted
// under its own state dir (netns_mounts_under_state_dir), inside that mount namespace: from the
// host they are reached through privatePath() (podNetns() does it).
//
//   const c = await Containerd.start({ confDir, binDirs: [...PLUGIN_DIRS] });
//   const id = (await c.crictlOk(['runp', podJson])).trim();
//   ...
//   await c.stop();   // pods stopped and removed, every process of it killed by pid, dirs gone
//
// Also the harness the CNI-door end-to-end tests and the containerd benchmark build on.
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, readlink, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { REPO_ROOT } from '../e2e/harness.js';
import { freeHostPort, pidAlive, randomHex, sh, shOk, tmpDir, waitFor, type ShResult } from '../helpers/env.js';

export const PAUSE_IMAGE = 'localhost/podnet-test/pause:1';
const CONTAINERD = '/usr/bin/containerd';
const PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const START_TIMEOUT_MS = 30_000;

export interface RuntimeHandler {
  name: string;
  cniConfDir: string;
  cniMaxConfNum?: number;
}

export interface ContainerdOptions {
  /** The CNI conf dir containerd reads (cni.conf_dir). */
  confDir: string;
  /**
   * Dirs holding CNI plugins; containerd 1.6 takes one bin_dir, so the harness makes one of
   * symlinks (the first dir that has a plugin wins, as in a PATH).
   */
  binDirs: readonly string[];
  /** cni.max_conf_num; default 1. */
  maxConfNum?: number;
  /** More runtime handlers (`crictl runp --runtime <name>`), each with its own CNI conf dir. */
  runtimeHandlers?: readonly RuntimeHandler[];
  /** TOML appended to the config as is. */
  extraConfig?: string;
  /** Serve containerd's Prometheus metrics on 127.0.0.1 (scrape with metrics()). */
  metrics?: boolean;
  /**
   * The podnet checkout the shared tools are found next to (crictl); default this file's
   * repo. For a caller that runs a compiled copy of this file from elsewhere (the bench).
   */
  repoRoot?: string;
}

/** Why containerd cannot run here, or undefined when it can (binaries and root). */
export function containerdMissing(repoRoot: string = REPO_ROOT): string | undefined {
  for (const bin of [CONTAINERD, '/usr/bin/containerd-shim-runc-v2', '/usr/bin/ctr']) if (!existsSync(bin)) return `${bin} is not installed (apt-get install containerd runc)`;
  if (!['/usr/sbin/runc', '/usr/bin/runc'].some((p) => existsSync(p))) return 'runc is not installed (apt-get install runc)';
  if (process.getuid?.() !== 0) return 'containerd needs root';
  if (!crictlPath(repoRoot)) return 'crictl is not on PATH nor in ../shared/tools/cri-tools';
  return undefined;
}

/** crictl from PATH first, then the shared tools next to the repo. */
export function crictlPath(repoRoot: string = REPO_ROOT): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(':')) if (dir && existsSync(join(dir, 'crictl'))) return join(dir, 'crictl');
  const shared = join(repoRoot, '..', 'shared', 'tools', 'cri-tools', 'crictl');
  return existsSync(shared) ? shared : undefined;
}

/** A runtime handler's table: runc, with its own CNI conf dir (containerd 1.6+). */
function runtimeHandlerToml(root: string, h: RuntimeHandler): string {
  if (!/^[A-Za-z0-9_-]+$/.test(h.name)) throw new Error(`runtime handler name ${JSON.stringify(h.name)} must be a bare TOML key`);
  const t = `plugins."io.containerd.grpc.v1.cri".containerd.runtimes.${h.name}`;
  return `
[${t}]
  runtime_type = "io.containerd.runc.v2"
  cni_conf_dir = ${JSON.stringify(h.cniConfDir)}
  cni_max_conf_num = ${h.cniMaxConfNum ?? 1}
  [${t}.options]
    Root = ${JSON.stringify(join(root, 'runc'))}
    SystemdCgroup = false
`;
}

// ---- the pause image --------------------------------------------------------------------------

const PAUSE_C = `#include <signal.h>
#include <unistd.h>
static void done(int s) { (void)s; _exit(0); }
int main(void) {
	signal(SIGTERM, done);
	signal(SIGINT, done);
	for (;;) pause();
}
`;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * An OCI image archive of a static pause binary (built here with gcc -static), named
 * PAUSE_IMAGE for `ctr images import`.
 */
async function buildPauseImage(dir: string): Promise<string> {
  const rootfs = join(dir, 'rootfs');
  await mkdir(rootfs, { recursive: true });
  await writeFile(join(dir, 'pause.c'), PAUSE_C);
  await shOk('gcc', ['-static', '-O2', '-o', join(rootfs, 'pause'), join(dir, 'pause.c')]);
  const layerTar = join(dir, 'layer.tar');
  await shOk('tar', ['--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', rootfs, '-cf', layerTar, 'pause']);
  const layer = await readFile(layerTar);
  const layout = join(dir, 'oci');
  const blobs = join(layout, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const blob = async (b: Buffer): Promise<{ digest: string; size: number }> => {
    const h = sha256(b);
    await writeFile(join(blobs, h), b);
    return { digest: `sha256:${h}`, size: b.length };
  };
  const layerDesc = await blob(layer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Entrypoint: ['/pause'], User: '65535:65535' },
      rootfs: { type: 'layers', diff_ids: [layerDesc.digest] },
    }),
  );
  const configDesc = await blob(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configDesc },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layerDesc }],
    }),
  );
  const manifestDesc = await blob(manifest);
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifestDesc, annotations: { 'io.containerd.image.name': PAUSE_IMAGE, 'org.opencontainers.image.ref.name': '1' } }],
    }),
  );
  const archive = join(dir, 'pause-image.tar');
  await shOk('tar', ['-C', layout, '-cf', archive, 'oci-layout', 'index.json', 'blobs']);
  return archive;
}

// ---- containerd -------------------------------------------------------------------------------

function configToml(root: string, o: ContainerdOptions, binDir: string, metricsPort: number | undefined): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = ${JSON.stringify(join(root, 'root'))}
state = ${JSON.stringify(join(root, 'state'))}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = ${JSON.stringify(join(root, 'containerd.sock'))}
[ttrpc]
  address = ${JSON.stringify(join(root, 'containerd.sock.ttrpc'))}
[debug]
  address = ${JSON.stringify(join(root, 'debug.sock'))}
  level = "info"
${metricsPort ? `[metrics]\n  address = "127.0.0.1:${metricsPort}"\n` : ''}
[plugins."io.containerd.internal.v1.opt"]
  path = ${JSON.stringify(join(root, 'opt'))}

[${cri}]
  sandbox_image = ${JSON.stringify(PAUSE_IMAGE)}
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # Never ask for an oom_score_adj below containerd's own: lowering it needs CAP_SYS_RESOURCE,
  # which a nested test machine may not grant.
  restrict_oom_score_adj = true
  [${cri}.containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.runc.options]
        Root = ${JSON.stringify(join(root, 'runc'))}
        SystemdCgroup = false
  [${cri}.cni]
    bin_dir = ${JSON.stringify(binDir)}
    conf_dir = ${JSON.stringify(o.confDir)}
    max_conf_num = ${o.maxConfNum ?? 1}
${(o.runtimeHandlers ?? []).map((h) => runtimeHandlerToml(root, h)).join('')}${o.extraConfig ?? ''}`;
}

/** One bin dir of symlinks to the plugins of binDirs, first dir first. */
async function linkPlugins(binDir: string, binDirs: readonly string[]): Promise<void> {
  await mkdir(binDir, { recursive: true });
  const seen = new Set<string>();
  for (const dir of binDirs) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      if (seen.has(n)) continue;
      seen.add(n);
      await symlink(join(dir, n), join(binDir, n));
    }
  }
}

const ROOT_PREFIX = 'podnet-containerd-';
const OWNER_FILE = 'owner.pid';

/**
 * Leftovers of runs whose test process died (kill -9: its pid-1 holder took every process with
 * it, but not the files): their cgroup dirs and roots, removed before a new run starts. A root
 * whose owner lives is someone else's run in progress and is left alone.
 */
async function sweepDeadRuns(): Promise<void> {
  for (const name of await readdir(tmpdir())) {
    if (!name.startsWith(ROOT_PREFIX)) continue;
    const root = join(tmpdir(), name);
    const owner = Number.parseInt(await readFile(join(root, OWNER_FILE), 'utf8').catch(() => ''), 10);
    if (!Number.isInteger(owner) || (await pidAlive(owner))) continue;
    await removeCgroups(`podnet-test-${name}`);
    await rm(root, { recursive: true, force: true });
  }
}

export class ContainerdStartError extends Error {
  override name = 'ContainerdStartError';
}

export class Containerd {
  readonly socket: string;
  readonly stateDir: string;
  /** The cgroup parent of every pod config podConfigFile() writes; removed by stop(). */
  readonly cgroupParent: string;
  /** `unshare ... cat`: its child (`cat`, pid 1 of the namespaces) holds them. */
  private unshare: ResultPromise | undefined;
  /** nsenter, the parent of containerd inside the namespaces. */
  private proc: ResultPromise | undefined;
  /** Host pid of pid 1 of the private pid namespace; every process of this containerd is under it. */
  private initPid = 0;
  private stopped = false;
  stderr = '';

  private constructor(
    readonly root: string,
    readonly configFile: string,
    private readonly crictlBin: string,
    readonly metricsPort: number | undefined,
  ) {
    this.socket = join(root, 'containerd.sock');
    this.stateDir = join(root, 'state');
    this.cgroupParent = `podnet-test-${basename(root)}`;
  }

  /** containerd's pid as the host sees it. */
  async pid(): Promise<number> {
    const nsenter = this.proc?.pid;
    const [pid] = nsenter === undefined ? [] : await childrenOf(nsenter);
    if (pid === undefined) throw new Error('containerd is not running');
    return pid;
  }

  static async start(opts: ContainerdOptions): Promise<Containerd> {
    const missing = containerdMissing(opts.repoRoot);
    if (missing) throw new ContainerdStartError(missing);
    await sweepDeadRuns();
    const root = await tmpDir(ROOT_PREFIX);
    await writeFile(join(root, OWNER_FILE), String(process.pid));
    const metricsPort = opts.metrics ? await freeHostPort() : undefined;
    const binDir = join(root, 'cni-bin');
    await linkPlugins(binDir, opts.binDirs);
    const configFile = join(root, 'config.toml');
    await writeFile(configFile, configToml(root, opts, binDir, metricsPort));
    await writeFile(join(root, 'crictl.yaml'), '');
    const c = new Containerd(root, configFile, crictlPath(opts.repoRoot)!, metricsPort);
    try {
      await c.spawn();
      const image = await buildPauseImage(join(root, 'image'));
      await c.ctrOk(['-n', 'k8s.io', 'images', 'import', '--snapshotter', 'native', image]);
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  /**
   * Private mount and pid namespaces, held by `cat` as pid 1: when the test process dies, even
   * by kill -9, cat reads EOF and exits, and the kernel kills everything left in the pid
   * namespace (containerd, its shims, the pods), so nothing outlives the run. Then tmpfs over
   * /run and /var/lib in the mount namespace, then containerd in both.
   */
  private async spawn(): Promise<void> {
    await chmod(this.root, 0o700);
    this.unshare = execa('unshare', ['--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--mount-proc', 'cat'], { reject: false, stdin: 'pipe' });
    const upid = this.unshare.pid;
    if (upid === undefined) throw new ContainerdStartError('unshare did not start');
    const ownPidNs = await readlink('/proc/self/ns/pid');
    const held = await waitFor(async () => {
      const [child] = await childrenOf(upid);
      if (child === undefined) return false;
      const comm = (await readFile(`/proc/${child}/comm`, 'utf8').catch(() => '')).trim();
      const ns = await readlink(`/proc/${child}/ns/pid`).catch(() => ownPidNs);
      if (comm !== 'cat' || ns === ownPidNs) return false;
      this.initPid = child;
      return true;
    }, 5000);
    if (!held) throw new ContainerdStartError('unshare did not make the private namespaces');
    const inside = (args: string[]): Promise<string> => shOk('nsenter', ['-t', String(this.initPid), '-m', '--', ...args]);
    await inside(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'podnet-test-run', '/run']);
    await inside(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'podnet-test-varlib', '/var/lib']);
    // The pod netns dir as a shared mount of its own (in this namespace only): a backend started
    // by backendCommand() gets a slave copy, so the bind mounts containerd makes later reach it.
    const netnsDir = join(this.stateDir, 'io.containerd.grpc.v1.cri', 'netns');
    await mkdir(netnsDir, { recursive: true });
    await inside(['mount', '--bind', netnsDir, netnsDir]);
    await inside(['mount', '--make-shared', netnsDir]);

    const child = execa('nsenter', ['-t', String(this.initPid), '-m', '-p', '--', CONTAINERD, '--config', this.configFile], {
      reject: false,
      buffer: false,
      stdin: 'ignore',
      env: { PATH: PATH_ENV },
      extendEnv: false,
    });
    this.proc = child;
    child.stderr?.on('data', (b: Buffer) => {
      if (this.stderr.length < 1 << 20) this.stderr += b.toString();
    });
    child.stdout?.resume();
    const serving = await waitFor(async () => !this.exitedSync() && (await this.crictl(['version'])).exitCode === 0, START_TIMEOUT_MS, 100);
    if (!serving) throw new ContainerdStartError(`containerd did not serve within ${START_TIMEOUT_MS} ms:\n${this.stderr.slice(-4000)}`);
  }

  private exitedSync(): boolean {
    return this.proc?.exitCode !== null && this.proc?.exitCode !== undefined;
  }

  /** crictl against this containerd (runtime and image endpoint), never throws. */
  crictl(args: readonly string[], timeoutMs = 60_000): Promise<ShResult> {
    const ep = `unix://${this.socket}`;
    return sh(this.crictlBin, ['--config', join(this.root, 'crictl.yaml'), '--runtime-endpoint', ep, '--image-endpoint', ep, '--timeout', `${Math.round(timeoutMs / 1000)}s`, ...args]);
  }

  async crictlOk(args: readonly string[], timeoutMs?: number): Promise<string> {
    const r = await this.crictl(args, timeoutMs);
    if (r.exitCode !== 0) throw new Error(`crictl ${args.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  ctr(args: readonly string[]): Promise<ShResult> {
    return sh('ctr', ['-a', this.socket, ...args]);
  }

  async ctrOk(args: readonly string[]): Promise<string> {
    const r = await this.ctr(args);
    if (r.exitCode !== 0) throw new Error(`ctr ${args.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Writes a pod config JSON under the root for `crictl runp`; returns its path. */
  async podConfigFile(overrides: { name?: string; namespace?: string; uid?: string; annotations?: Record<string, string>; portMappings?: { container_port: number; host_port: number; protocol?: 'TCP' | 'UDP' | 'SCTP' }[] } = {}): Promise<string> {
    const suffix = randomHex(8);
    const file = join(this.root, `pod-${suffix}.json`);
    await writeFile(
      file,
      JSON.stringify({
        metadata: { name: overrides.name ?? `pod-${suffix}`, namespace: overrides.namespace ?? 'default', uid: overrides.uid ?? `uid-${suffix}`, attempt: 0 },
        annotations: overrides.annotations ?? {},
        // crictl reads the CRI enum as its number.
        port_mappings: (overrides.portMappings ?? []).map((p) => ({ ...p, protocol: { TCP: 0, UDP: 1, SCTP: 2 }[p.protocol ?? 'TCP'] })),
        linux: { cgroup_parent: `/${this.cgroupParent}` },
      }),
    );
    return file;
  }

  /** `crictl inspectp` as JSON. */
  async inspectPod(id: string): Promise<{ status: { network?: { ip?: string }; state?: string }; info: { pid?: number; runtimeSpec?: unknown } }> {
    return JSON.parse(await this.crictlOk(['inspectp', id])) as { status: { network?: { ip?: string }; state?: string }; info: { pid?: number } };
  }

  /**
   * The pod's network namespace as the host can open it: the pause process's, through the
   * private /proc (crictl reports pids of the private pid namespace).
   */
  async podNetns(id: string): Promise<string> {
    const pid = (await this.inspectPod(id)).info.pid;
    if (!pid) throw new Error(`pod ${id} has no running pause process`);
    return this.privatePath(`/proc/${pid}/ns/net`);
  }

  /** Prometheus text from containerd's metrics endpoint (start with metrics: true). */
  async metrics(): Promise<string> {
    if (!this.metricsPort) throw new Error('containerd was started without metrics');
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/v1/metrics`);
    if (!res.ok) throw new Error(`containerd metrics: HTTP ${res.status}`);
    return res.text();
  }

  /**
   * A path as this containerd's processes see it (through /proc/<pid 1>/root), e.g.
   * privatePath('/var/lib/cni') for go-cni's result cache, which lives in the private tmpfs.
   */
  privatePath(path: string): string {
    if (!this.initPid) throw new Error('containerd is not running');
    return join(`/proc/${this.initPid}/root`, path);
  }

  /**
   * The command prefix that runs a program in this containerd's mount namespace (not its pid
   * namespace): what a CNI backend on the host needs to open the CNI_NETNS paths containerd
   * hands out, since those bind mounts exist only in there. Its processes are the caller's to end.
   * With pidNs, its pid namespace too: the /proc mounted in there is that namespace's, so a
   * program that reads /proc/self (podnetd does) needs it. nsenter then forks: the program is
   * its child (signal that pid, not nsenter's), and stop() ends it with the namespaces.
   */
  mountNsCommand(cmd: string, args: readonly string[] = [], opts: { pidNs?: boolean } = {}): [string, string[]] {
    if (!this.initPid) throw new Error('containerd is not running');
    return ['nsenter', ['-t', String(this.initPid), '-m', ...(opts.pidNs ? ['-p'] : []), '--', cmd, ...args]];
  }

  /**
   * The command line that runs a CNI backend (podnetd) where it sees what containerd sees: a
   * mount namespace of its own, a slave of containerd's (the CNI_NETNS bind mounts containerd
   * makes reach it, nothing it mounts reaches containerd or the host), with a /proc of the host's
   * pid namespace (containerd's /proc is its private pid namespace's, where the backend has no
   * /proc/self). Every step execs, so the pid is the backend's; it is the caller's to end.
   */
  backendCommand(cmd: string, args: readonly string[] = []): [string, string[]] {
    const [nsenter, inNs] = this.mountNsCommand('unshare', ['--mount', '--propagation', 'slave', '--', 'sh', '-c', 'mount -t proc proc /proc && exec "$@"', 'sh', cmd, ...args]);
    return [nsenter, inNs];
  }

  /**
   * Host pids of everything in the private pid namespace: pid 1 and its descendants (the shims
   * and pods: orphans are re-parented to pid 1), and containerd with its children (its parent is
   * nsenter, outside).
   */
  async processes(): Promise<number[]> {
    const out: number[] = [];
    const walk = async (pid: number): Promise<void> => {
      if (!(await pidAlive(pid))) return;
      out.push(pid);
      for (const c of await childrenOf(pid)) await walk(c);
    };
    if (this.initPid) await walk(this.initPid);
    if (this.proc?.pid !== undefined) for (const c of await childrenOf(this.proc.pid)) await walk(c);
    return out;
  }

  /**
   * Stops and removes every pod (so their CNI DEL runs), stops containerd, then ends pid 1 of
   * its namespaces, which takes every process left (the shims outlive containerd by design)
   * and the mount namespace with its netns mounts; then removes the root. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.proc && !this.exitedSync()) {
      const ids = (await this.crictl(['pods', '-q'])).stdout.split('\n').filter(Boolean);
      for (const id of ids) {
        await this.crictl(['stopp', id]);
        await this.crictl(['rmp', '-f', id]);
      }
      const pid = await this.pid().catch(() => undefined);
      if (pid !== undefined) killPid(pid, 'SIGTERM');
      if (!(await waitFor(() => this.exitedSync(), 10_000))) this.proc.kill('SIGKILL');
    }
    if (this.initPid) killPid(this.initPid, 'SIGKILL');
    await Promise.all([this.proc, this.unshare]);
    await waitFor(async () => (await this.processes()).length === 0, 10_000);
    await removeCgroups(this.cgroupParent);
    await rm(this.root, { recursive: true, force: true });
  }

  /** The host pids this harness started (unshare, pid 1, nsenter), for leak checks. */
  startedPids(): number[] {
    return [this.unshare?.pid, this.initPid || undefined, this.proc?.pid].filter((p): p is number => p !== undefined);
  }
}

/** The children of a process, forked by any of its threads. */
async function childrenOf(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const out: number[] = [];
  for (const t of tasks) {
    const text = await readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => '');
    out.push(...text.split(' ').filter(Boolean).map(Number));
  }
  return out;
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** The cgroups runc made under this containerd's parent, in every hierarchy, deepest first. */
async function removeCgroups(parent: string): Promise<void> {
  const base = '/sys/fs/cgroup';
  let hierarchies: string[];
  try {
    hierarchies = (await readdir(base)).map((h) => join(base, h));
  } catch {
    return;
  }
  for (const h of [...hierarchies, base]) await rmdirTree(join(h, parent));
}

async function rmdirTree(dir: string): Promise<void> {
  let st;
  try {
    st = await stat(dir);
  } catch {
    return;
  }
  if (!st.isDirectory()) return;
  for (const e of await readdir(dir, { withFileTypes: true })) if (e.isDirectory()) await rmdirTree(join(dir, e.name));
  await rmdir(dir).catch(() => undefined);
}

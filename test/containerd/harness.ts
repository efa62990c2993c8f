// A private containerd for tests: Debian's containerd 1.6 + runc, each run with its own root,
// state, sockets, config and CNI dirs, started inside a private mount namespace with tmpfs over
// /run and /var/lib, so nothing of the host's /run/containerd, /var/lib/containerd, /var/lib/cni
// (go-cni's cache dir, which containerd 1.6 cannot move) or /var/run/netns is touched. The pod
// namespaces are bind-mounted under its own state dir (netns_mounts_under_state_dir), inside
// that mount namespace: from the host a pod's namespace is /proc/<pause pid>/ns/net.
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
import { basename, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { REPO_ROOT } from '../e2e/harness.js';
import { freeHostPort, pidAlive, randomHex, sh, shOk, tmpDir, waitFor, type ShResult } from '../helpers/env.js';

export const PAUSE_IMAGE = 'localhost/podnet-test/pause:1';
const CONTAINERD = '/usr/bin/containerd';
const PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const START_TIMEOUT_MS = 30_000;

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
  /** TOML appended to the config, e.g. more runtime handlers (see runtimeHandlerToml). */
  extraConfig?: string;
  /** Serve containerd's Prometheus metrics on 127.0.0.1 (scrape with metrics()). */
  metrics?: boolean;
}

/** Why containerd cannot run here, or undefined when it can (binaries and root). */
export function containerdMissing(): string | undefined {
  for (const bin of [CONTAINERD, '/usr/bin/containerd-shim-runc-v2', '/usr/bin/ctr']) if (!existsSync(bin)) return `${bin} is not installed (apt-get install containerd runc)`;
  if (!['/usr/sbin/runc', '/usr/bin/runc'].some((p) => existsSync(p))) return 'runc is not installed (apt-get install runc)';
  if (process.getuid?.() !== 0) return 'containerd needs root';
  if (!crictlPath()) return 'crictl is not on PATH nor in ../shared/tools/cri-tools';
  return undefined;
}

/** crictl from PATH first, then the shared tools next to the repo. */
export function crictlPath(): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(':')) if (dir && existsSync(join(dir, 'crictl'))) return join(dir, 'crictl');
  const shared = join(REPO_ROOT, '..', 'shared', 'tools', 'cri-tools', 'crictl');
  return existsSync(shared) ? shared : undefined;
}

/** A [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<name>] table with its own CNI conf dir. */
export function runtimeHandlerToml(root: string, name: string, cniConfDir: string): string {
  return `
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.${name}]
  runtime_type = "io.containerd.runc.v2"
  cni_conf_dir = ${JSON.stringify(cniConfDir)}
  cni_max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.${name}.options]
    Root = ${JSON.stringify(join(root, 'runc'))}
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
${o.extraConfig ?? ''}`;
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

export class ContainerdStartError extends Error {
  override name = 'ContainerdStartError';
}

export class Containerd {
  /** The pods' network namespaces, from the host (pause pid → /proc/<pid>/ns/net). */
  readonly socket: string;
  readonly stateDir: string;
  private proc: ResultPromise | undefined;
  private holder: ResultPromise | undefined;
  private mountNs = '';
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

  /** The cgroup parent of every pod config podConfigFile() writes; removed by stop(). */
  readonly cgroupParent: string;

  /** containerd's pid (the process started in the private mount namespace). */
  get pid(): number {
    const p = this.proc?.pid;
    if (p === undefined) throw new Error('containerd is not running');
    return p;
  }

  static async start(opts: ContainerdOptions): Promise<Containerd> {
    const missing = containerdMissing();
    if (missing) throw new ContainerdStartError(missing);
    const root = await tmpDir('podnet-containerd-');
    const metricsPort = opts.metrics ? await freeHostPort() : undefined;
    const binDir = join(root, 'cni-bin');
    await linkPlugins(binDir, opts.binDirs);
    const configFile = join(root, 'config.toml');
    await writeFile(configFile, configToml(root, opts, binDir, metricsPort));
    await writeFile(join(root, 'crictl.yaml'), '');
    const c = new Containerd(root, configFile, crictlPath()!, metricsPort);
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

  private async spawn(): Promise<void> {
    await chmod(this.root, 0o700);
    // The private mount namespace: a holder process, then tmpfs over /run and /var/lib in it.
    this.holder = execa('unshare', ['--mount', '--propagation', 'private', 'sleep', '1000000'], { reject: false, stdin: 'ignore' });
    const hpid = this.holder.pid;
    if (hpid === undefined) throw new ContainerdStartError('unshare did not start');
    const own = await readlink('/proc/self/ns/mnt');
    const inNs = await waitFor(async () => {
      const ns = await readlink(`/proc/${hpid}/ns/mnt`).catch(() => own);
      return ns !== own && (await readFile(`/proc/${hpid}/comm`, 'utf8').catch(() => '')).trim() === 'sleep';
    }, 5000);
    if (!inNs) throw new ContainerdStartError('unshare --mount did not make a mount namespace');
    this.mountNs = await readlink(`/proc/${hpid}/ns/mnt`);
    const inside = (args: string[]): Promise<string> => shOk('nsenter', ['-t', String(hpid), '-m', '--', ...args]);
    await inside(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'podnet-test-run', '/run']);
    await inside(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'podnet-test-varlib', '/var/lib']);

    const child = execa('nsenter', ['-t', String(hpid), '-m', '--', CONTAINERD, '--config', this.configFile], {
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

  /** The pod's network namespace as the host sees it: /proc/<pause pid>/ns/net. */
  async podNetns(id: string): Promise<string> {
    const pid = (await this.inspectPod(id)).info.pid;
    if (!pid) throw new Error(`pod ${id} has no running pause process`);
    return `/proc/${pid}/ns/net`;
  }

  /** Prometheus text from containerd's metrics endpoint (start with metrics: true). */
  async metrics(): Promise<string> {
    if (!this.metricsPort) throw new Error('containerd was started without metrics');
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/v1/metrics`);
    if (!res.ok) throw new Error(`containerd metrics: HTTP ${res.status}`);
    return res.text();
  }

  /**
   * A path as this containerd's processes see it (through the holder's /proc/<pid>/root), e.g.
   * privatePath('/var/lib/cni') for go-cni's result cache, which lives in the private tmpfs.
   */
  privatePath(path: string): string {
    const pid = this.holder?.pid;
    if (pid === undefined) throw new Error('containerd is not running');
    return join(`/proc/${pid}/root`, path);
  }

  /** Pids of every process living in this containerd's mount namespace (containerd, shims, pods, the holder). */
  async processes(): Promise<number[]> {
    if (!this.mountNs) return [];
    const out: number[] = [];
    for (const e of await readdir('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      const ns = await readlink(`/proc/${e}/ns/mnt`).catch(() => '');
      if (ns === this.mountNs) out.push(Number(e));
    }
    return out;
  }

  /**
   * Stops and removes every pod (so their CNI DEL runs), then ends containerd, its shims and
   * the pods' processes by pid, then the mount namespace (its netns mounts go with it), then
   * removes the root. Idempotent.
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
      this.proc.kill('SIGTERM');
      const ended = await waitFor(() => this.exitedSync(), 10_000);
      if (!ended) this.proc.kill('SIGKILL');
      await this.proc;
    }
    // The shims outlive containerd by design: everything left in our mount namespace is ours.
    const holderPid = this.holder?.pid;
    for (const pid of await this.processes()) if (pid !== holderPid) killPid(pid);
    await waitFor(async () => (await this.processes()).every((p) => p === holderPid || !existsSync(`/proc/${p}`)), 10_000);
    if (this.holder) {
      this.holder.kill('SIGKILL');
      await this.holder;
    }
    await removeCgroups(this.cgroupParent);
    await rm(this.root, { recursive: true, force: true });
  }

  /** Every pid this harness started or found in its namespace, for leak checks. */
  async alive(): Promise<number[]> {
    const out: number[] = [];
    for (const p of [this.proc?.pid, this.holder?.pid]) if (p !== undefined && (await pidAlive(p))) out.push(p);
    return out;
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
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

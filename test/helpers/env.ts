// Shared helpers for tests that run real CNI plugins in real network namespaces.
// Everything a test makes lives under its own temp dirs and gets a random name, so test files
// can run in parallel with each other (and with other suites) without stepping on each other.
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { randomBytes, randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';

/** Where the real plugins may be installed, in the order a node would search them. */
export const PLUGIN_DIRS: readonly string[] = ['/opt/cni/bin', '/usr/lib/cni'];

/** The fault-injection plugins of test/plugins. */
export const FAULT_PLUGIN_DIR: string = fileURLToPath(new URL('../plugins/', import.meta.url)).replace(/\/$/, '');

/** Fault plugins first, then the real ones. */
export const TEST_PLUGIN_PATH: readonly string[] = [FAULT_PLUGIN_DIR, ...PLUGIN_DIRS];

export function randomHex(n: number): string {
  return randomBytes(Math.ceil(n / 2)).toString('hex').slice(0, n);
}

/** A fresh directory under the OS temp dir; the caller removes it (see Cleanup.dir). */
export function tmpDir(prefix = 'podnet-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export interface Subnet {
  /** "10.123.45.0/24" */
  subnet: string;
  /** "10.123.45.1" */
  gateway: string;
  /** "10.123.45": append ".N" for an address of the subnet. */
  prefix: string;
}

const usedSubnets = new Set<string>();

/** The "10.x.y" prefixes of every subnet handed out so far in this process (for leak checks). */
export function usedSubnetPrefixes(): string[] {
  return [...usedSubnets];
}

/**
 * Claims a name machine-wide (a directory made with mkdir, which is atomic, holding the
 * claimer's pid), so test suites running at once in other checkouts never get the same subnet.
 * A claim whose process died is taken over.
 */
function claimMachineWide(kind: string, name: string): boolean {
  const dir = join(tmpdir(), `podnet-test-claims-${kind}`);
  mkdirSync(dir, { recursive: true });
  sweepOnce(dir);
  const claim = join(dir, name);
  try {
    mkdirSync(claim);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    let holder: number;
    try {
      holder = Number.parseInt(readFileSync(join(claim, 'pid'), 'utf8'), 10);
    } catch {
      return false; // just made by someone still writing its pid
    }
    if (holder === process.pid || processAlive(holder)) return false;
    rmSync(claim, { recursive: true, force: true });
    return claimMachineWide(kind, name);
  }
  writeFileSync(join(claim, 'pid'), String(process.pid));
  return true;
}

const swept = new Set<string>();

/**
 * Once per process, the claims of processes that are gone are removed (a test worker is killed
 * rather than exiting, so its claims outlive it), so the claims dir holds only live ones.
 */
function sweepOnce(dir: string): void {
  if (swept.has(dir)) return;
  swept.add(dir);
  for (const name of readdirSync(dir)) {
    let holder: number;
    try {
      holder = Number.parseInt(readFileSync(join(dir, name, 'pid'), 'utf8'), 10);
    } catch {
      continue; // being made right now
    }
    if (!processAlive(holder)) rmSync(join(dir, name), { recursive: true, force: true });
  }
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A random 10.<100-250>.<0-255>.0/24, never the same twice on this machine while its claimer lives. */
export function uniqueSubnet(): Subnet {
  for (;;) {
    const prefix = `10.${randomInt(100, 251)}.${randomInt(0, 256)}`;
    if (usedSubnets.has(prefix)) continue;
    if (!claimMachineWide('subnets', prefix)) continue;
    usedSubnets.add(prefix);
    return { subnet: `${prefix}.0/24`, gateway: `${prefix}.1`, prefix };
  }
}

/** A random fdXX:XXXX::/64 that is not the host's fd00::/64. */
export function uniqueSubnet6(): Subnet {
  const prefix = `fd00:${(0x1000 + randomInt(0, 0xefff)).toString(16)}:${randomHex(4)}::`;
  return { subnet: `${prefix}/64`, gateway: `${prefix}1`, prefix };
}

export interface ShResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a command without a shell; never throws on a non-zero exit (check exitCode). */
export async function sh(cmd: string, args: readonly string[] = []): Promise<ShResult> {
  const r = await execa(cmd, [...args], { reject: false });
  return { exitCode: r.exitCode ?? 128, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Like sh, but throws with the command line and stderr when it fails. */
export async function shOk(cmd: string, args: readonly string[] = []): Promise<string> {
  const r = await sh(cmd, args);
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** `nsenter --net=<nsPath> cmd args...` */
export function nsExec(nsPath: string, cmd: string, args: readonly string[] = []): Promise<ShResult> {
  return sh('nsenter', [`--net=${nsPath}`, cmd, ...args]);
}

/** Runs `ip args...` in a namespace, or in the host's when nsPath is undefined. */
function ipIn(nsPath: string | undefined, args: readonly string[]): Promise<ShResult> {
  return nsPath ? nsExec(nsPath, 'ip', args) : sh('ip', args);
}

export interface IpAddr {
  family: 'inet' | 'inet6';
  /** The address without prefix length. */
  local: string;
  prefixlen: number;
  /** local/prefixlen */
  cidr: string;
  scope: string;
}

interface RawAddrInfo {
  family?: unknown;
  local?: unknown;
  prefixlen?: unknown;
  scope?: unknown;
}

/** The addresses of an interface in a namespace (`ip -j addr show dev IF`); [] if the interface is missing. */
export async function ipAddrsIn(nsPath: string | undefined, ifname: string): Promise<IpAddr[]> {
  const r = await ipIn(nsPath, ['-j', 'addr', 'show', 'dev', ifname]);
  if (r.exitCode !== 0) return [];
  const parsed = JSON.parse(r.stdout || '[]') as Array<{ addr_info?: RawAddrInfo[] }>;
  const out: IpAddr[] = [];
  for (const link of parsed) {
    for (const a of link.addr_info ?? []) {
      if ((a.family !== 'inet' && a.family !== 'inet6') || typeof a.local !== 'string' || typeof a.prefixlen !== 'number') continue;
      out.push({ family: a.family, local: a.local, prefixlen: a.prefixlen, cidr: `${a.local}/${a.prefixlen}`, scope: typeof a.scope === 'string' ? a.scope : '' });
    }
  }
  return out;
}

export interface LinkInfo {
  ifname: string;
  mtu: number;
  operstate: string;
  flags: string[];
  address: string;
  /** "veth", "bridge", "macvlan", "dummy"... when ip -d reports it. */
  kind?: string;
}

interface RawLink {
  ifname?: unknown;
  mtu?: unknown;
  operstate?: unknown;
  flags?: unknown;
  address?: unknown;
  linkinfo?: { info_kind?: unknown };
}

/** `ip -d -j link show dev NAME` in a namespace (or the host's); undefined if there is no such link. */
export async function linkInfo(nsPath: string | undefined, name: string): Promise<LinkInfo | undefined> {
  const r = await ipIn(nsPath, ['-d', '-j', 'link', 'show', 'dev', name]);
  if (r.exitCode !== 0) return undefined;
  const [l] = JSON.parse(r.stdout || '[]') as RawLink[];
  if (!l || typeof l.ifname !== 'string') return undefined;
  return {
    ifname: l.ifname,
    mtu: typeof l.mtu === 'number' ? l.mtu : 0,
    operstate: typeof l.operstate === 'string' ? l.operstate : '',
    flags: Array.isArray(l.flags) ? l.flags.filter((f): f is string => typeof f === 'string') : [],
    address: typeof l.address === 'string' ? l.address : '',
    ...(typeof l.linkinfo?.info_kind === 'string' ? { kind: l.linkinfo.info_kind } : {}),
  };
}

/** The names of every link in a namespace, sorted (a veth's `@peer` cut off). */
export async function linkNames(nsPath: string): Promise<string[]> {
  const r = await nsExec(nsPath, 'ip', ['-o', 'link', 'show']);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':')[1].trim().split('@')[0])
    .sort();
}

export async function linkExists(nsPath: string | undefined, name: string): Promise<boolean> {
  return (await ipIn(nsPath, ['link', 'show', 'dev', name])).exitCode === 0;
}

/** Deletes a host link if it exists (bridges, dummies); a missing link is fine. */
export async function delHostLink(name: string): Promise<void> {
  if (await linkExists(undefined, name)) await shOk('ip', ['link', 'del', name]);
}

/**
 * A parent link for macvlan/ipvlan in the host namespace: a dummy when the kernel has the dummy
 * driver, else a veth pair (`name` and `name`+"p"; deleting `name` deletes both). Up, not addressed.
 */
export async function createParentLink(name: string): Promise<void> {
  const dummy = await sh('ip', ['link', 'add', name, 'type', 'dummy']);
  if (dummy.exitCode !== 0) await shOk('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
  await shOk('ip', ['link', 'set', name, 'up']);
}

/** Whether a pid is a live process (a zombie nobody reaped counts as gone). */
export async function pidAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": the state follows the last ")".
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Polls until fn() is true; returns false if it never was within timeoutMs. */
export async function waitFor(fn: () => Promise<boolean> | boolean, timeoutMs = 2000, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function writeJSON(file: string, value: unknown): Promise<void> {
  await writeFile(file, JSON.stringify(value, null, 2));
}

/** host-local IPAM that keeps its state under dataDir (never /var/lib/cni). */
export function hostLocalIpam(subnet: Subnet, dataDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'host-local', dataDir, ranges: [[{ subnet: subnet.subnet, gateway: subnet.gateway }]], ...extra };
}

/**
 * Runs fn holding a lock shared by every test process on this machine (a directory created with
 * mkdir, which is atomic). Used around host-global state such as portmap's top-level iptables
 * chains. A lock whose holder died is taken over.
 */
export async function withHostLock<T>(name: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const lock = join(tmpdir(), `podnet-test-${name}.lock`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(lock);
      await writeFile(join(lock, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(await readFile(join(lock, 'pid'), 'utf8').catch(() => ''));
      if (holder > 0 && !(await pidAlive(holder))) {
        await rm(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${lock} (held by ${holder || 'unknown'})`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** portmap's shared top-level chains in the nat table (it never removes them itself). */
export const PORTMAP_TOP_CHAINS = ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ'] as const;

/** The `iptables -t nat -S` lines that mention text (e.g. a container IP or "CNI-"). */
export async function natRulesMatching(text: string): Promise<string[]> {
  const out = await shOk('iptables', ['-w', '-t', 'nat', '-S']);
  return out.split('\n').filter((l) => l.includes(text));
}

/**
 * Removes portmap's top-level chains and the jumps to them, but only when nothing is forwarded
 * through them any more: no per-container chain and no rule in CNI-HOSTPORT-DNAT (the static mark
 * and masquerade rules portmap puts in SETMARK/MASQ don't count). Call under withHostLock('iptables'),
 * and only for chains that did not exist before the test file started.
 */
export async function removeEmptyPortmapChains(): Promise<void> {
  const rules = await natRulesMatching('CNI-');
  const inUse = rules.some((l) => /^-N CNI-(?!HOSTPORT-)/.test(l) || l.startsWith('-A CNI-HOSTPORT-DNAT '));
  if (inUse) return;
  for (const l of rules) {
    const m = /^-A (PREROUTING|OUTPUT|POSTROUTING|INPUT|FORWARD) (.*-j CNI-HOSTPORT-\S+.*)$/.exec(l);
    if (!m) continue;
    // The rule text from -S is re-split on spaces; portmap's comments are the only quoted part.
    const args = (m[2].match(/"[^"]*"|\S+/g) ?? []).map((a) => a.replace(/^"(.*)"$/, '$1'));
    await shOk('iptables', ['-w', '-t', 'nat', '-D', m[1], ...args]);
  }
  for (const chain of PORTMAP_TOP_CHAINS) {
    if (!rules.includes(`-N ${chain}`)) continue;
    await shOk('iptables', ['-w', '-t', 'nat', '-F', chain]);
    await shOk('iptables', ['-w', '-t', 'nat', '-X', chain]);
  }
}

/**
 * Undo actions, run newest first. Every action runs even if earlier ones fail; failures are
 * swallowed and collected, and run() returns them so a test can assert there were none.
 */
export class Cleanup {
  private readonly stack: Array<{ what: string; fn: () => unknown }> = [];

  push(fn: () => unknown, what = fn.name || 'cleanup'): void {
    this.stack.push({ what, fn });
  }

  /** Removes a directory tree at cleanup time; returns the path. */
  dir(path: string): string {
    this.push(() => rm(path, { recursive: true, force: true }), `rm -r ${path}`);
    return path;
  }

  /** Deletes a host link at cleanup time (bridge, dummy parent); returns the name. */
  link(name: string): string {
    this.push(() => delHostLink(name), `ip link del ${name}`);
    return name;
  }

  get size(): number {
    return this.stack.length;
  }

  /** Runs every action in reverse order and returns the failures. */
  async run(): Promise<Error[]> {
    const errors: Error[] = [];
    while (this.stack.length > 0) {
      const { what, fn } = this.stack.pop()!;
      try {
        await fn();
      } catch (err) {
        errors.push(new Error(`cleanup "${what}" failed: ${err instanceof Error ? err.message : String(err)}`));
      }
    }
    return errors;
  }
}

/** Whether a path exists (any kind of file). */
export function pathExists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

/** A network namespace held only by a process (`unshare --net sleep`): no bind mount, no file. */
export interface NetnsHolder {
  pid: number;
  /** `/proc/<pid>/ns/net`, for nsenter --net= and `ip link set ... netns`. */
  path: string;
  /** Kills the holder (by its pid) and waits for it; the namespace goes with it. */
  stop(): Promise<void>;
}

/** Starts a process in a fresh network namespace of its own and waits until it is in there. */
export async function startNetnsHolder(): Promise<NetnsHolder> {
  const child = execa('unshare', ['--net', 'sleep', '3600'], { reject: false, stdin: 'ignore' });
  const pid = child.pid;
  if (pid === undefined) throw new Error('unshare did not start');
  const stop = async (): Promise<void> => {
    child.kill('SIGKILL');
    await child;
  };
  const own = await readlink('/proc/self/ns/net');
  const moved = await waitFor(async () => {
    const ns = await readlink(`/proc/${pid}/ns/net`).catch(() => own);
    return ns !== own && (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim() === 'sleep';
  }, 5000);
  if (!moved) {
    await stop();
    throw new Error('unshare --net sleep did not get into a namespace of its own');
  }
  return { pid, path: `/proc/${pid}/ns/net`, stop };
}

/**
 * A host port in 20000-32767 (below the ephemeral range) that nothing on 127.0.0.1 listens on, so
 * a DNAT rule for it cannot capture anyone else's connections.
 */
export async function freeHostPort(): Promise<number> {
  for (;;) {
    const port = randomInt(20000, 32768);
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

// bin/podnet next to a real podnetd (dist/, harness.ts): the cnitool verbs give what the daemon
// gives on the same network, a cache entry `podnet add` wrote is DEL'ed by the daemon's
// delete-from-cache path, and `podnet sandboxes / inspect / network-status / gc` read and signal
// a live daemon. Real plugins, real namespaces; every name, subnet and dir is the test's own.
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CNIConfig, runtimeConfFromCache } from '../../src/cni/cni.js';
import { loadNetworkByName } from '../../src/cni/config.js';
import { delAttachment } from '../../src/cni/networks.js';
import type { Result } from '../../src/cni/result.js';
import { cnitoolContainerID } from '../../src/cmd/cnitool.js';
import { NetnsManager } from '../../src/netns/netns.js';
import { freeHostPort, ipAddrsIn, natRulesMatching, pathExists, pidAlive, PLUGIN_DIRS, removeEmptyPortmapChains, waitFor, withHostLock } from '../helpers/env.js';
import {
  type Daemon,
  disposeAll,
  expectNothingLeft,
  inSubnet,
  newRoot,
  onCleanup,
  podConfig,
  REPO_ROOT,
  startDaemon,
  type TestNetwork,
  testNetwork,
} from './harness.js';

const PODNET = join(REPO_ROOT, 'bin', 'podnet');
const HEX64 = /^[0-9a-f]{64}$/;

let portmapChainsBefore = true;

beforeAll(async () => {
  portmapChainsBefore = (await natRulesMatching('-N CNI-HOSTPORT-DNAT')).length > 0;
});

afterEach(async () => {
  expect(await disposeAll()).toEqual([]);
});

afterAll(async () => {
  await disposeAll();
  // portmap never removes its top-level chains; they go only if this file created them and
  // nothing forwards through them any more.
  if (!portmapChainsBefore) await withHostLock('iptables', removeEmptyPortmapChains);
});

interface CachedInfo {
  kind: string;
  containerId: string;
  config: string;
  ifName: string;
  networkName: string;
  netns?: string;
  capabilityArgs?: Record<string, unknown>;
  result?: Result;
}

interface AttachmentResult {
  network: string;
  ifName: string;
  result: Result;
}

interface Timing {
  network: string;
  plugin: string;
  verb: string;
  ms: number;
}

/** The output of `podnet inspect`: the sandbox record plus its network-status. */
interface Inspected {
  id: string;
  phase: string;
  metadata: { name: string; namespace: string; uid: string; attempt: number };
  netnsPath: string;
  runtimeHandler: string;
  ips: Array<{ ip: string; ifName: string }>;
  attachments: Array<{ network: string; ifName: string; config: string }>;
  results: AttachmentResult[];
  timings: Timing[];
  'network-status': Array<{ name: string; interface: string; ips: string[]; mac?: string; default: boolean }>;
}

/** A daemon whose conf dir holds one fresh bridge network. */
async function daemonWithNetwork(opts: { portmap?: boolean } = {}): Promise<{ d: Daemon; net: TestNetwork; root: string }> {
  const root = await newRoot();
  const net = testNetwork(root, opts);
  const d = await startDaemon({ root, confFiles: { '10-net.conflist': net.text } });
  return { d, net, root };
}

/** A namespace of the test's own (not the daemon's), removed at cleanup. */
async function testNetns(root: string): Promise<string> {
  const mgr = new NetnsManager(join(root, 'cli-netns'));
  const ns = await mgr.create();
  onCleanup(() => mgr.remove(ns), `remove ${ns}`);
  return ns;
}

/** cnitool's environment for the daemon's conf dir. */
function cliEnv(d: Daemon, extra: Record<string, string> = {}): Record<string, string> {
  return { NETCONFPATH: d.confDir, CNI_PATH: PLUGIN_DIRS.join(':'), ...extra };
}

function podnet(args: string[], env: Record<string, string> = {}): ReturnType<typeof execa> {
  return execa(PODNET, args, { env, reject: false });
}

const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const VETH_RE = /^veth[0-9a-f]{8}$/;

/**
 * A result with the values that differ between two attachments of one network replaced by what
 * they must look like: host veth names, MACs, the sandbox path, the address (kept: family and
 * prefix length). Every other field, and the order of interfaces and IPs, stays as it is.
 */
function shape(r: Result, bridge: string, sandbox: string): unknown {
  return {
    ...r,
    interfaces: (r.interfaces ?? []).map((i) => ({
      ...i,
      name: i.name === bridge ? '<bridge>' : VETH_RE.test(i.name) ? '<host veth>' : i.name,
      ...(i.mac !== undefined ? { mac: MAC_RE.test(i.mac) ? '<mac>' : `bad mac ${i.mac}` } : {}),
      ...(i.sandbox !== undefined ? { sandbox: i.sandbox === sandbox ? '<netns>' : `other netns ${i.sandbox}` } : {}),
    })),
    ips: (r.ips ?? []).map((ip) => ({ ...ip, address: `<${ip.address.includes(':') ? 'v6' : 'v4'}>/${ip.address.split('/')[1]}` })),
  };
}

describe('podnet add / check / del against the daemon', () => {
  it('prints a result of the same shape as the one the daemon records for a pod on the same network', async () => {
    const { d, net, root } = await daemonWithNetwork();
    const id = await d.rpc.run(podConfig());
    const info = await d.rpc.statusInfo(id);
    const podNs = String(info['netNamespacePath']);
    const daemonResults = info['cniResult'] as AttachmentResult[];
    expect(daemonResults.map((r) => [r.network, r.ifName])).toEqual([
      ['cni-loopback', 'lo'],
      [net.name, 'eth0'],
    ]);
    const fromDaemon = daemonResults[1].result;

    const ns = await testNetns(root);
    const cacheDir = join(root, 'cli-cache');
    const env = cliEnv(d);
    const add = await podnet(['add', net.name, ns, '--cache-dir', cacheDir], env);
    expect(add.stderr).toBe('');
    expect(add.exitCode).toBe(0);
    onCleanup(() => podnet(['del', net.name, ns, '--cache-dir', cacheDir], env), 'podnet del');
    const fromCli = JSON.parse(String(add.stdout)) as Result;

    // Same network, same plugins: bridge, host veth, eth0 in the namespace; one IPv4 /24 on eth0
    // with the bridge as gateway; same routes and dns. Only names, MACs and addresses differ.
    expect(shape(fromCli, net.bridge, ns)).toEqual(shape(fromDaemon, net.bridge, podNs));
    expect(fromCli.interfaces?.map((i) => i.name)).toEqual([net.bridge, expect.stringMatching(VETH_RE), 'eth0']);
    expect(fromCli.ips).toEqual([{ interface: 2, address: expect.stringMatching(/\/24$/), gateway: net.subnet.gateway }]);
    const cliIP = fromCli.ips![0].address.split('/')[0];
    const podIP = fromDaemon.ips![0].address.split('/')[0];
    expect(inSubnet(cliIP, net.subnet)).toBe(true);
    expect(cliIP).not.toBe(podIP);
    expect((await ipAddrsIn(ns, 'eth0')).filter((a) => a.family === 'inet').map((a) => a.cidr)).toEqual([fromCli.ips![0].address]);
    // The printed result is the cached one.
    const cliID = cnitoolContainerID(ns);
    const cached = JSON.parse(await readFile(join(cacheDir, 'results', `${net.name}-${cliID}-eth0`), 'utf8')) as CachedInfo;
    expect(cached.result).toEqual(fromCli);

    // CHECK passes for both: ours, and the daemon's pod read from the daemon's cache by its id.
    const check = await podnet(['check', net.name, ns, '--cache-dir', cacheDir], env);
    expect(check.stderr).toBe('');
    expect(check.exitCode).toBe(0);
    const checkPod = await podnet(['check', net.name, podNs, '--cache-dir', d.cacheDir], cliEnv(d, { CNI_CONTAINERID: id }));
    expect(checkPod.stderr).toBe('');
    expect(checkPod.exitCode).toBe(0);

    const del = await podnet(['del', net.name, ns, '--cache-dir', cacheDir], env);
    expect(del.exitCode).toBe(0);
    const held = await readdir(join(net.dataDir, net.name));
    expect(held).not.toContain(cliIP);
    expect(held).toContain(podIP);
    expect(await ipAddrsIn(ns, 'eth0')).toEqual([]);
    expect(await readdir(join(cacheDir, 'results'))).toEqual([]);
    // The daemon's pod was not touched.
    expect((await ipAddrsIn(podNs, 'eth0')).map((a) => a.local)).toContain(podIP);
  });
});

describe('a cache entry written by podnet add', () => {
  it("is DEL'ed by the daemon's delete-from-cache path: IP, port mapping rules and the entry are released", async () => {
    const { d, net, root } = await daemonWithNetwork({ portmap: true });
    const ns = await testNetns(root);
    const cacheDir = d.cacheDir;
    const hostPort = await freeHostPort();
    const portMappings = [{ hostPort, containerPort: 8080, protocol: 'tcp', hostIP: '127.0.0.1' }];
    const env = cliEnv(d, { CAP_ARGS: JSON.stringify({ portMappings }), CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=cli-pod' });
    const containerID = cnitoolContainerID(ns);
    const original = await loadNetworkByName(d.confDir, net.name);
    const cni = new CNIConfig({ path: PLUGIN_DIRS, cacheDir });
    // Whatever happens below, the attachment goes (DEL is idempotent; the cached config wins).
    onCleanup(
      () => withHostLock('iptables', () => delAttachment(cni, { list: original, ifName: 'eth0' }, { containerID, netNS: '', ifName: 'eth0' }, AbortSignal.timeout(60_000))),
      'DEL the podnet add attachment',
    );
    const add = await withHostLock('iptables', () => podnet(['add', net.name, ns, '--cache-dir', cacheDir], env));
    expect(add.stderr).toBe('');
    expect(add.exitCode).toBe(0);
    const ip = (JSON.parse(String(add.stdout)) as Result).ips![0].address.split('/')[0];
    expect(await readdir(join(net.dataDir, net.name))).toContain(ip);
    // portmap's rules name the container id (unique to this test) and forward to the pod's IP.
    expect((await natRulesMatching(containerID)).length).toBeGreaterThan(0);
    expect((await natRulesMatching(`${ip}:8080`)).join('\n')).toContain(`--dport ${hostPort}`);

    // libcni's cniCacheV1 entry, with what DEL needs: the config bytes, CNI_ARGS, capability args.
    const cacheFile = join(cacheDir, 'results', `${net.name}-${containerID}-eth0`);
    const onDisk = JSON.parse(await readFile(cacheFile, 'utf8')) as CachedInfo;
    expect(onDisk).toMatchObject({ kind: 'cniCacheV1', containerId: containerID, ifName: 'eth0', networkName: net.name, netns: ns, capabilityArgs: { portMappings } });
    expect(Buffer.from(onDisk.config, 'base64').toString()).toBe(net.text);

    // The pod goes away, and the network's config is edited since (no portmap, another IPAM dir):
    // DEL must still use what the attachment was added with.
    await new NetnsManager(join(root, 'cli-netns')).remove(ns);
    const edited = JSON.parse(net.text) as { plugins: Array<Record<string, unknown>> };
    edited.plugins = [{ ...edited.plugins[0], ipam: { type: 'host-local', dataDir: join(root, 'other-ipam'), ranges: [[{ subnet: net.subnet.subnet }]] } }];
    await writeFile(join(d.confDir, '10-net.conflist'), JSON.stringify(edited));
    const current = await loadNetworkByName(d.confDir, net.name);
    expect(current.plugins.map((p) => p.type)).toEqual(['bridge']);

    // What the daemon does for an attachment whose pod is gone (GC, doctor --fix): the runtime
    // conf from the cache entry, no namespace, delAttachment (the cached config wins).
    const [entry] = await cni.getCachedAttachments(containerID);
    expect(entry).toBeDefined();
    const rt = { ...runtimeConfFromCache(entry), netNS: '' };
    expect(rt).toMatchObject({ containerID, ifName: 'eth0', capabilityArgs: { portMappings } });
    await withHostLock('iptables', () => delAttachment(cni, { list: current, ifName: 'eth0' }, rt, AbortSignal.timeout(60_000)));

    expect(await readdir(join(net.dataDir, net.name))).not.toContain(ip);
    expect(await natRulesMatching(containerID)).toEqual([]);
    expect(await natRulesMatching(`${ip}:`)).toEqual([]);
    expect(await pathExists(cacheFile)).toBe(false);
    expect(await pathExists(join(root, 'other-ipam'))).toBe(false);
  });
});

describe('podnet sandboxes / inspect / network-status', () => {
  it('lists and inspects a real pod of a running daemon, with its results and per-plugin timings', async () => {
    const { d, net } = await daemonWithNetwork();
    const cfg = podConfig();
    const id = await d.rpc.run(cfg);
    expect(id).toMatch(HEX64);
    const info = await d.rpc.statusInfo(id);
    const ip = (await d.rpc.status(id)).status!.network!.ip;
    const state = ['--state-dir', d.stateDir];

    const json = await podnet(['sandboxes', '--json', ...state]);
    expect(json.exitCode).toBe(0);
    const listed = JSON.parse(String(json.stdout)) as Array<Record<string, unknown>>;
    expect(listed).toEqual([{ id, pod: cfg.metadata!.name, namespace: 'e2e', handler: '', state: 'ready', ips: [ip], door: 'cri', netnsOwner: 'podnet', createdAt: expect.stringMatching(/^\d+$/) }]);
    expect(BigInt(listed[0]['createdAt'] as string)).toBe((await d.rpc.status(id)).status!.createdAt);

    const tableOut = await podnet(['sandboxes', ...state]);
    expect(tableOut.exitCode).toBe(0);
    const lines = String(tableOut.stdout).trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0].split(/\s+/)).toEqual(['ID', 'POD', 'NAMESPACE', 'HANDLER', 'DOOR', 'NETNS-OWNER', 'STATE', 'IPS', 'AGE']);
    const row = lines[1].split(/\s+/);
    expect(row.slice(0, 8)).toEqual([id.slice(0, 13), cfg.metadata!.name, 'e2e', '-', 'cri', 'podnet', 'ready', ip]);
    expect(row[8]).toMatch(/^\d+[smh]$/);

    // inspect by a unique prefix: the whole record, the results and timings the daemon reports.
    const ins = await podnet(['inspect', id.slice(0, 12), ...state]);
    expect(ins.stderr).toBe('');
    expect(ins.exitCode).toBe(0);
    const rec = JSON.parse(String(ins.stdout)) as Inspected;
    expect(rec).toMatchObject({ id, phase: 'ready', netnsPath: info['netNamespacePath'], runtimeHandler: '', ips: [{ ip, ifName: 'eth0' }], metadata: cfg.metadata });
    expect(rec.attachments.map((a) => [a.network, a.ifName])).toEqual([
      ['cni-loopback', 'lo'],
      [net.name, 'eth0'],
    ]);
    expect(Buffer.from(rec.attachments[1].config, 'base64').toString()).toBe(net.text);
    expect(rec.results).toEqual(info['cniResult']);
    expect(rec.results[1].result.ips).toEqual([{ interface: 2, address: `${ip}/24`, gateway: net.subnet.gateway }]);
    expect(rec.timings).toEqual(info['pluginTimings']);
    // One timing per plugin run: loopback and bridge ADD (host-local runs inside bridge).
    expect(rec.timings.map((t) => [t.network, t.plugin, t.verb]).sort()).toEqual([
      ['cni-loopback', 'loopback', 'ADD'],
      [net.name, 'bridge', 'ADD'],
    ]);
    for (const t of rec.timings) expect(typeof t.ms).toBe('number');
    const eth0 = rec.results[1].result.interfaces![2];
    expect(rec['network-status']).toEqual([{ name: net.name, interface: 'eth0', ips: [ip], mac: eth0.mac, default: true }]);
    expect(rec['network-status']).toEqual(info['network-status']);

    const ns = await podnet(['network-status', id, ...state]);
    expect(ns.exitCode).toBe(0);
    expect(JSON.parse(String(ns.stdout))).toEqual(rec['network-status']);

    // After StopPodSandbox: notready, no IPs, and the DEL timings are in the record too.
    await d.rpc.stop(id);
    const stopped = JSON.parse(String((await podnet(['sandboxes', '--json', ...state])).stdout)) as Array<Record<string, unknown>>;
    expect(stopped).toEqual([expect.objectContaining({ id, state: 'notready', ips: [] })]);
    const after = JSON.parse(String((await podnet(['inspect', id, ...state])).stdout)) as Inspected;
    expect(after.timings.filter((t) => t.verb === 'DEL').map((t) => t.plugin).sort()).toEqual(['bridge', 'loopback']);
    await d.rpc.remove(id);
    const empty = await podnet(['sandboxes', '--json', ...state]);
    expect(JSON.parse(String(empty.stdout))).toEqual([]);
  });

  it('inspect of an unknown or missing id fails with the cause on stderr', async () => {
    const { d } = await daemonWithNetwork();
    const id = await d.rpc.run(podConfig());
    const unknown = 'ab'.repeat(32);
    const r = await podnet(['inspect', unknown, '--state-dir', d.stateDir]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`podnet: sandbox "${unknown}" not found in ${d.stateDir}`);
    const ns = await podnet(['network-status', unknown, '--state-dir', d.stateDir]);
    expect(ns.exitCode).toBe(1);
    expect(ns.stderr).toContain(`sandbox "${unknown}" not found`);
    const missing = await podnet(['inspect', '--state-dir', d.stateDir]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('a sandbox id (or unique prefix) is required');
    // The real one is still found.
    expect((await podnet(['inspect', id, '--state-dir', d.stateDir])).exitCode).toBe(0);
  });
});

describe('podnet gc (no network)', () => {
  it('signals the running daemon, which runs CNI GC; a stale pid file is refused', async () => {
    const { d } = await daemonWithNetwork();
    const done = (): number => d.logs.filter((l) => l['msg'] === 'cni garbage collection done').length;
    // The daemon runs GC once right after it starts serving.
    expect(await waitFor(() => done() >= 1, 10_000)).toBe(true);
    const before = done();
    const r = await podnet(['gc', '--state-dir', d.stateDir]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`asked podnetd (pid ${d.pid}) to collect garbage; its log has the report`);
    expect(await waitFor(() => done() > before, 10_000)).toBe(true);

    // A pid file left by a killed daemon may name another process by now: it must not be signalled
    // (SIGUSR1 would terminate it).
    const other = execa('sleep', ['600'], { reject: false });
    onCleanup(async () => {
      other.kill('SIGKILL');
      await other;
    }, 'kill sleep');
    const staleDir = join(d.root, 'stale-state');
    await mkdir(staleDir, { recursive: true });
    await writeFile(join(staleDir, 'podnetd.pid'), `${other.pid!}\n`);
    const stale = await podnet(['gc', '--state-dir', staleDir]);
    expect(stale.exitCode).toBe(1);
    expect(stale.stderr).toContain(`pid ${other.pid!} in ${join(staleDir, 'podnetd.pid')} is not a podnetd`);
    expect(await pidAlive(other.pid!)).toBe(true);
    const none = await podnet(['gc', '--state-dir', join(d.root, 'no-such-dir')]);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toContain('no running podnetd found');
  });
});

describe('leftovers', () => {
  it('left no namespace mounts, bridges, daemons or iptables rules behind', async () => {
    await expectNothingLeft();
  });
});

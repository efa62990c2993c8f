// Real plugins (/usr/lib/cni) in real namespaces: ADD, CHECK, DEL through CNIConfig, verified by
// looking at the namespace, host-local's state files and the result cache.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CNIConfig,
  PluginError,
  confListFromBytes,
  resultIPs,
  toCurrent,
  type AnyResult,
  type NetworkConfigList,
  type Result,
  type RuntimeConf,
} from '../../src/cni/index.js';
import { NetnsManager } from '../../src/netns/netns.js';
import {
  Cleanup,
  createParentLink,
  TEST_PLUGIN_PATH,
  hostLocalIpam,
  ipAddrsIn,
  linkExists,
  linkInfo,
  natRulesMatching,
  nsExec,
  randomHex,
  removeEmptyPortmapChains,
  sh,
  shOk,
  tmpDir,
  uniqueSubnet,
  withHostLock,
  type Subnet, pathExists } from '../helpers/env.js';

const cleanup = new Cleanup();
let cacheDir: string;
let dataDir: string;
let netns: NetnsManager;
let cni: CNIConfig;
let ipForwardBefore: string;
let portmapChainsBefore = true;

const exists = pathExists;

beforeAll(async () => {
  const root = cleanup.dir(await tmpDir('podnet-plugins-'));
  cacheDir = join(root, 'cache');
  dataDir = join(root, 'ipam');
  netns = new NetnsManager(join(root, 'netns'));
  cni = new CNIConfig({ path: TEST_PLUGIN_PATH, cacheDir });
  // ptp turns on IPv4 forwarding on the host; we put it back as it was.
  ipForwardBefore = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
  portmapChainsBefore = (await natRulesMatching('-N CNI-HOSTPORT-DNAT')).length > 0;
});

afterAll(async () => {
  const errors = await cleanup.run();
  await writeFile('/proc/sys/net/ipv4/ip_forward', ipForwardBefore);
  if (!portmapChainsBefore) await withHostLock('iptables', removeEmptyPortmapChains);
  expect(errors).toEqual([]);
  expect(await netns.list()).toEqual([]);
});

function mkList(obj: Record<string, unknown>): NetworkConfigList {
  return confListFromBytes(Buffer.from(JSON.stringify(obj)));
}

function bridgeName(): string {
  return cleanup.link(`pn${randomHex(6)}`);
}

function bridgePlugin(bridge: string, subnet: Subnet): Record<string, unknown> {
  return { type: 'bridge', bridge, isGateway: false, ipMasq: false, ipam: hostLocalIpam(subnet, dataDir) };
}

interface Attached {
  ns: string;
  rt: RuntimeConf;
  result: AnyResult;
  current: Result;
  /** The IPs of the container interface (no prefix). */
  ips: string[];
}

/**
 * A namespace and an ADD into it. Cleanup DELs first (best effort, so iptables rules, ifb devices
 * and IPs never outlive a failed test), then removes the namespace.
 */
async function add(list: NetworkConfigList, opts: { ifName?: string; capabilityArgs?: Record<string, unknown>; lock?: boolean } = {}): Promise<Attached> {
  const ns = await netns.create();
  cleanup.push(() => netns.remove(ns), `netns ${ns}`);
  const rt: RuntimeConf = {
    containerID: `c-${randomHex(10)}`,
    netNS: ns,
    ifName: opts.ifName ?? 'eth0',
    ...(opts.capabilityArgs ? { capabilityArgs: opts.capabilityArgs } : {}),
  };
  cleanup.push(() => cni.delNetworkList(list, rt).catch(() => undefined), `DEL ${list.name} ${rt.containerID}`);
  const run = (): Promise<AnyResult> => cni.addNetworkList(list, rt);
  const result = opts.lock ? await withHostLock('iptables', run) : await run();
  const current = toCurrent(result);
  const ips = resultIPs(current)
    .filter((ip) => ip.interface !== undefined && current.interfaces?.[ip.interface]?.name === rt.ifName)
    .map((ip) => ip.ip);
  return { ns, rt, result, current, ips };
}

function cachePath(list: NetworkConfigList, rt: RuntimeConf): string {
  return join(cacheDir, 'results', `${list.name}-${rt.containerID}-${rt.ifName}`);
}

function allocPath(list: NetworkConfigList, ip: string): string {
  return join(dataDir, list.name, ip);
}

/** What every ADD with host-local must leave behind. */
async function expectAdded(list: NetworkConfigList, a: Attached, subnet: Subnet): Promise<void> {
  expect(a.result.cniVersion).toBe(list.cniVersion);
  expect(a.ips).toHaveLength(1);
  expect(a.ips[0].startsWith(`${subnet.prefix}.`)).toBe(true);
  const onIface = (await ipAddrsIn(a.ns, a.rt.ifName)).map((x) => x.cidr);
  expect(onIface).toContain(`${a.ips[0]}/24`);
  expect(await exists(allocPath(list, a.ips[0]))).toBe(true);
  expect(await readFile(allocPath(list, a.ips[0]), 'utf8')).toContain(a.rt.containerID);
  expect(await exists(cachePath(list, a.rt))).toBe(true);
  const sandbox = a.current.interfaces?.find((i) => i.name === a.rt.ifName);
  expect(sandbox?.sandbox).toBe(a.ns);
}

async function expectDeleted(list: NetworkConfigList, a: Attached): Promise<void> {
  expect(await linkExists(a.ns, a.rt.ifName)).toBe(false);
  for (const ip of a.ips) expect(await exists(allocPath(list, ip))).toBe(false);
  expect(await exists(cachePath(list, a.rt))).toBe(false);
}

async function expectCheckFails(list: NetworkConfigList, a: Attached): Promise<PluginError> {
  const err: unknown = await cni.checkNetworkList(list, a.rt).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PluginError);
  return err as PluginError;
}

/** The full life of one network: ADD/CHECK/DEL on one container, then CHECK failing on a broken one. */
async function lifecycle(list: NetworkConfigList, subnet: Subnet): Promise<void> {
  const a = await add(list);
  await expectAdded(list, a, subnet);
  await cni.checkNetworkList(list, a.rt);
  await cni.delNetworkList(list, a.rt);
  await expectDeleted(list, a);

  const b = await add(list);
  await expectAdded(list, b, subnet);
  await shOk('nsenter', [`--net=${b.ns}`, 'ip', 'link', 'del', b.rt.ifName]);
  const err = await expectCheckFails(list, b);
  expect(err.verb).toBe('CHECK');
  expect(err.network).toBe(list.name);
  // DEL is best effort: the interface is gone already, the allocation must still be released.
  await cni.delNetworkList(list, b.rt);
  await expectDeleted(list, b);
}

describe('bridge + host-local', () => {
  it('ADD / CHECK / DEL, and CHECK fails once the interface is gone', async () => {
    const subnet = uniqueSubnet();
    const bridge = bridgeName();
    const list = mkList({ cniVersion: '1.0.0', name: `br-${randomHex(6)}`, plugins: [bridgePlugin(bridge, subnet)] });
    await lifecycle(list, subnet);
    expect((await linkInfo(undefined, bridge))?.kind).toBe('bridge');
  });

  it('works at 0.4.0 and 0.3.1 too (0.3.1 has no CHECK)', async () => {
    for (const version of ['0.4.0', '0.3.1']) {
      const subnet = uniqueSubnet();
      const list = mkList({ cniVersion: version, name: `brv-${randomHex(6)}`, plugins: [bridgePlugin(bridgeName(), subnet)] });
      const a = await add(list);
      await expectAdded(list, a, subnet);
      if (version === '0.4.0') await cni.checkNetworkList(list, a.rt);
      await cni.delNetworkList(list, a.rt);
      await expectDeleted(list, a);
    }
  });

  it('with portmap chained: the DNAT rule for the container exists after ADD and is gone after DEL', async () => {
    const subnet = uniqueSubnet();
    const hostPort = 20000 + Math.floor(Math.random() * 20000);
    const list = mkList({
      cniVersion: '1.0.0',
      name: `pm-${randomHex(6)}`,
      plugins: [bridgePlugin(bridgeName(), subnet), { type: 'portmap', capabilities: { portMappings: true }, snat: false }],
    });
    const a = await add(list, { capabilityArgs: { portMappings: [{ hostPort, containerPort: 8080, protocol: 'tcp' }] }, lock: true });
    await expectAdded(list, a, subnet);
    const dnat = await natRulesMatching(`${a.ips[0]}:8080`);
    expect(dnat.length).toBeGreaterThan(0);
    expect(dnat.join('\n')).toContain(`--dport ${hostPort}`);
    // No CHECK here: portmap 1.1.x's CHECK always looks for an IPv6 DNAT chain too and fails on
    // an IPv4-only container ("could not check ipv6 dnat"), a plugin bug rather than ours.
    await withHostLock('iptables', () => cni.delNetworkList(list, a.rt));
    await expectDeleted(list, a);
    expect(await natRulesMatching(a.ips[0])).toEqual([]);
  });
});

describe('ptp + host-local', () => {
  it('ADD / CHECK / DEL, and CHECK fails once the interface is gone', async () => {
    const subnet = uniqueSubnet();
    const list = mkList({
      cniVersion: '1.0.0',
      name: `ptp-${randomHex(6)}`,
      plugins: [{ type: 'ptp', ipMasq: false, ipam: hostLocalIpam(subnet, dataDir) }],
    });
    const a = await add(list);
    await expectAdded(list, a, subnet);
    // ptp routes the container's address to its host-side veth.
    const hostVeth = a.current.interfaces?.find((i) => !i.sandbox)?.name;
    expect(hostVeth).toBeDefined();
    expect(await linkExists(undefined, hostVeth!)).toBe(true);
    await cni.checkNetworkList(list, a.rt);
    await cni.delNetworkList(list, a.rt);
    await expectDeleted(list, a);
    expect(await linkExists(undefined, hostVeth!)).toBe(false);

    const b = await add(list);
    await shOk('nsenter', [`--net=${b.ns}`, 'ip', 'link', 'del', b.rt.ifName]);
    await expectCheckFails(list, b);
    await cni.delNetworkList(list, b.rt);
    await expectDeleted(list, b);
  });
});

describe('macvlan + host-local on a dummy parent', () => {
  it('ADD / CHECK / DEL, and CHECK fails once the interface is gone', async () => {
    const parent = cleanup.link(`pd${randomHex(6)}`);
    await createParentLink(parent);
    const subnet = uniqueSubnet();
    const list = mkList({
      cniVersion: '1.0.0',
      name: `mv-${randomHex(6)}`,
      plugins: [{ type: 'macvlan', master: parent, mode: 'bridge', ipam: hostLocalIpam(subnet, dataDir) }],
    });
    const a = await add(list);
    expect((await linkInfo(a.ns, 'eth0'))?.kind).toBe('macvlan');
    await lifecycle(list, subnet);
    await cni.delNetworkList(list, a.rt);
    await expectDeleted(list, a);
  });
});

describe('loopback', () => {
  it('ADD brings lo up with 127.0.0.1, CHECK passes, DEL takes it down; CHECK fails when lo is down', async () => {
    const list = mkList({ cniVersion: '1.0.0', name: `lo-${randomHex(6)}`, plugins: [{ type: 'loopback' }] });
    const a = await add(list, { ifName: 'lo' });
    expect(a.ips).toContain('127.0.0.1');
    expect((await linkInfo(a.ns, 'lo'))?.flags).toContain('UP');
    expect((await ipAddrsIn(a.ns, 'lo')).map((x) => x.cidr)).toContain('127.0.0.1/8');
    expect(await exists(cachePath(list, a.rt))).toBe(true);
    expect((await nsExec(a.ns, 'ip', ['route', 'get', '127.0.0.1'])).stdout).toMatch(/dev lo/);
    await cni.checkNetworkList(list, a.rt);

    await shOk('nsenter', [`--net=${a.ns}`, 'ip', 'link', 'set', 'lo', 'down']);
    await expectCheckFails(list, a);
    await shOk('nsenter', [`--net=${a.ns}`, 'ip', 'link', 'set', 'lo', 'up']);

    await cni.delNetworkList(list, a.rt);
    expect((await linkInfo(a.ns, 'lo'))?.flags).not.toContain('UP');
    expect(await exists(cachePath(list, a.rt))).toBe(false);
  });
});

describe('tuning chained after bridge', () => {
  it('sets the MTU and a sysctl of the container interface', async () => {
    const subnet = uniqueSubnet();
    const list = mkList({
      cniVersion: '1.0.0',
      name: `tun-${randomHex(6)}`,
      plugins: [bridgePlugin(bridgeName(), subnet), { type: 'tuning', mtu: 1280, sysctl: { 'net.ipv4.conf.eth0.arp_ignore': '1' } }],
    });
    const a = await add(list);
    await expectAdded(list, a, subnet);
    expect((await linkInfo(a.ns, 'eth0'))?.mtu).toBe(1280);
    const sysctl = await nsExec(a.ns, 'cat', ['/proc/sys/net/ipv4/conf/eth0/arp_ignore']);
    expect(sysctl.stdout.trim()).toBe('1');
    await cni.checkNetworkList(list, a.rt);
    await cni.delNetworkList(list, a.rt);
    await expectDeleted(list, a);
  });
});

describe('bandwidth chained after bridge', () => {
  it('installs tbf shaping from the bandwidth capability and removes it on DEL', async () => {
    const subnet = uniqueSubnet();
    const list = mkList({
      cniVersion: '1.0.0',
      name: `bw-${randomHex(6)}`,
      plugins: [bridgePlugin(bridgeName(), subnet), { type: 'bandwidth', capabilities: { bandwidth: true } }],
    });
    const bandwidth = { ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 4_000_000, egressBurst: 40_000 };
    const a = await add(list, { capabilityArgs: { bandwidth } });
    await expectAdded(list, a, subnet);
    const names = (a.current.interfaces ?? []).filter((i) => !i.sandbox).map((i) => i.name);
    // Ingress of the container is shaped on the host veth; egress through an ifb device the plugin adds.
    const hostVeth = (await Promise.all(names.map(async (n) => ((await linkInfo(undefined, n))?.kind === 'veth' ? n : undefined)))).find(Boolean);
    expect(hostVeth).toBeDefined();
    const qdiscs = await shOk('tc', ['qdisc', 'show', 'dev', hostVeth!]);
    expect(qdiscs).toMatch(/qdisc tbf/);
    const ifbs = (await shOk('ip', ['-o', 'link', 'show', 'type', 'ifb'])).split('\n').filter((l) => l.includes('bwp'));
    expect(ifbs.length).toBeGreaterThan(0);
    const ifbName = /^\d+: ([^:@]+)/.exec(ifbs[0])?.[1];
    expect(await shOk('tc', ['qdisc', 'show', 'dev', ifbName!])).toMatch(/qdisc tbf/);
    await cni.checkNetworkList(list, a.rt);
    await cni.delNetworkList(list, a.rt);
    await expectDeleted(list, a);
    expect(await linkExists(undefined, ifbName!)).toBe(false);
    expect(await linkExists(undefined, hostVeth!)).toBe(false);
  });
});

describe('version negotiation with a plugin that only speaks 0.3.1', () => {
  it('a 1.0.0 list with only-031 (real tuning behind it) ADDs, takes effect, and DELs', async () => {
    const subnet = uniqueSubnet();
    const root = cleanup.dir(await tmpDir('podnet-only031-'));
    const record = join(root, 'calls.log');
    const list = mkList({
      cniVersion: '1.0.0',
      name: `o31-${randomHex(6)}`,
      plugins: [bridgePlugin(bridgeName(), subnet), { type: 'only-031', shimTarget: 'tuning', recordFile: record, mtu: 1300, promisc: true }],
    });
    // A CNIConfig of its own: negotiated versions are remembered per instance.
    const own = new CNIConfig({ path: TEST_PLUGIN_PATH, cacheDir });
    const ns = await netns.create();
    cleanup.push(() => netns.remove(ns), `netns ${ns}`);
    const rt: RuntimeConf = { containerID: `c-${randomHex(10)}`, netNS: ns, ifName: 'eth0' };
    cleanup.push(() => own.delNetworkList(list, rt).catch(() => undefined), 'DEL only-031');

    const result = await own.addNetworkList(list, rt);
    expect(result.cniVersion).toBe('1.0.0');
    const current = toCurrent(result);
    expect(current.interfaces?.some((i) => i.name === 'eth0' && i.sandbox === ns)).toBe(true);
    const ip = resultIPs(current)[0].ip;
    expect((await ipAddrsIn(ns, 'eth0')).map((x) => x.cidr)).toContain(`${ip}/24`);
    const link = await linkInfo(ns, 'eth0');
    expect(link?.mtu).toBe(1300);
    expect(link?.flags).toContain('PROMISC');
    expect((await readFile(record, 'utf8')).trim().split('\n')).toEqual(['ADD 1.0.0', 'ADD 0.3.1']);

    await own.delNetworkList(list, rt);
    expect(await linkExists(ns, 'eth0')).toBe(false);
    expect(await exists(allocPath(list, ip))).toBe(false);
    expect(await exists(join(cacheDir, 'results', `${list.name}-${rt.containerID}-eth0`))).toBe(false);
    // The same instance remembers the version it negotiated: DEL went straight to 0.3.1.
    expect((await readFile(record, 'utf8')).trim().split('\n').slice(2)).toEqual(['DEL 0.3.1']);

    // A fresh instance (a restarted daemon) negotiates again on DEL.
    const rt2: RuntimeConf = { ...rt, containerID: `c-${randomHex(10)}` };
    cleanup.push(() => own.delNetworkList(list, rt2).catch(() => undefined), 'DEL only-031 (2)');
    expect((await own.addNetworkList(list, rt2)).cniVersion).toBe('1.0.0');
    const fresh = new CNIConfig({ path: TEST_PLUGIN_PATH, cacheDir });
    const lines = (await readFile(record, 'utf8')).trim().split('\n').length;
    await fresh.delNetworkList(list, rt2);
    expect((await readFile(record, 'utf8')).trim().split('\n').slice(lines)).toEqual(['DEL 1.0.0', 'DEL 0.3.1']);
    expect(await linkExists(ns, 'eth0')).toBe(false);
    const left = await sh('ls', [join(dataDir, list.name)]);
    expect(left.stdout.split('\n').filter((f) => f.startsWith(subnet.prefix))).toEqual([]);
  });
});

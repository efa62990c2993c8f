// Networks (go-cni's CNI object): a pod joins loopback plus the first maxConfNum networks of a
// conf dir, with real bridge + host-local in a real namespace.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Networks, PluginError, type SetupResult } from '../../src/cni/index.js';
import { NetnsManager } from '../../src/netns/netns.js';
import {
  Cleanup,
  TEST_PLUGIN_PATH,
  hostLocalIpam,
  ipAddrsIn,
  linkExists,
  linkInfo,
  randomHex,
  tmpDir,
  uniqueSubnet,
  writeJSON,
  type Subnet, pathExists } from '../helpers/env.js';

const cleanup = new Cleanup();
let root: string;
let confDir: string;
let cacheDir: string;
let dataDir: string;
let netnsMgr: NetnsManager;
let nets: Networks;
const subnets: Subnet[] = [];
const names: string[] = [];

const exists = pathExists;

function bridgeConflist(name: string, subnet: Subnet): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name,
    plugins: [{ type: 'bridge', bridge: cleanup.link(`pn${randomHex(6)}`), isGateway: false, ipMasq: false, ipam: hostLocalIpam(subnet, dataDir) }],
  };
}

beforeAll(async () => {
  root = cleanup.dir(await tmpDir('podnet-networks-'));
  confDir = join(root, 'conf');
  cacheDir = join(root, 'cache');
  dataDir = join(root, 'ipam');
  netnsMgr = new NetnsManager(join(root, 'netns'));
  await mkdir(confDir);
  for (let i = 0; i < 2; i++) {
    subnets.push(uniqueSubnet());
    names.push(`nw${i}-${randomHex(6)}`);
    await writeJSON(join(confDir, `${10 + i}-net.conflist`), bridgeConflist(names[i]!, subnets[i]!));
  }
  // A third network that must not be joined with maxConfNum 2: if it were, every ADD would fail.
  await writeJSON(join(confDir, '30-third.conflist'), { cniVersion: '1.0.0', name: 'third', plugins: [{ type: 'fail-json' }] });
  await writeJSON(join(confDir, '40-broken.conflist'), { cniVersion: '1.0.0', plugins: [] });
  nets = await Networks.load({ pluginDirs: TEST_PLUGIN_PATH, confDir, cacheDir, maxConfNum: 2 });
});

afterAll(async () => {
  const errors = await cleanup.run();
  expect(errors).toEqual([]);
  expect(await netnsMgr.list()).toEqual([]);
});

interface Pod {
  id: string;
  ns: string;
}

async function newPod(): Promise<Pod> {
  const ns = await netnsMgr.create();
  const id = `pod-${randomHex(10)}`;
  cleanup.push(() => netnsMgr.remove(ns), `netns ${ns}`);
  cleanup.push(() => nets.teardown(id, ns).catch(() => undefined), `teardown ${id}`);
  return { id, ns };
}

function allocFiles(i: number): Promise<string[]> {
  return readdir(join(dataDir, names[i]!)).then(
    (fs) => fs.filter((f) => f.startsWith(`${subnets[i]!.prefix}.`)),
    () => [],
  );
}

/** What a pod on both networks must look like, checked against the namespace itself. */
async function expectWired(pod: Pod, r: SetupResult): Promise<void> {
  expect(Object.keys(r.interfaces).sort()).toEqual(['eth0', 'eth1', 'lo']);
  expect(r.results.map((x) => [x.network, x.ifName])).toEqual([
    ['cni-loopback', 'lo'],
    [names[0], 'eth0'],
    [names[1], 'eth1'],
  ]);
  for (const [i, ifName] of ['eth0', 'eth1'].entries()) {
    const info = r.interfaces[ifName]!;
    expect(info.sandbox).toBe(pod.ns);
    expect(info.ipConfigs).toHaveLength(1);
    const ip = info.ipConfigs[0]!;
    expect(ip.family).toBe(4);
    expect(ip.ip.startsWith(`${subnets[i]!.prefix}.`)).toBe(true);
    expect(ip.address).toBe(`${ip.ip}/24`);
    expect(ip.gateway).toBe(subnets[i]!.gateway);
    expect((await ipAddrsIn(pod.ns, ifName)).map((a) => a.cidr)).toContain(ip.address);
    const link = await linkInfo(pod.ns, ifName);
    expect(info.mac).toBe(link?.address);
  }
  expect(r.interfaces['lo']!.ipConfigs.map((c) => c.ip)).toContain('127.0.0.1');
  expect((await linkInfo(pod.ns, 'lo'))?.flags).toContain('UP');
}

describe('Networks.load', () => {
  it('takes loopback plus the first maxConfNum networks, and reports the broken file', () => {
    expect(nets.attachments.map((a) => [a.list.name, a.ifName])).toEqual([
      ['cni-loopback', 'lo'],
      [names[0], 'eth0'],
      [names[1], 'eth1'],
    ]);
    expect(nets.networks.map((n) => n.name)).toEqual(names);
    expect(nets.ready()).toBe(true);
    expect(nets.loadErrors.map((e) => e.file)).toEqual([join(confDir, '40-broken.conflist')]);
  });

  it('an empty conf dir is not ready', async () => {
    const empty = await Networks.load({ pluginDirs: TEST_PLUGIN_PATH, confDir: join(root, 'none'), cacheDir });
    expect(empty.ready()).toBe(false);
    expect(empty.attachments.map((a) => a.ifName)).toEqual(['lo']);
  });
});

describe('setup', () => {
  it('in parallel: lo, eth0 and eth1 with addresses from the two subnets', async () => {
    const pod = await newPod();
    const r = await nets.setup(pod.id, pod.ns);
    await expectWired(pod, r);
    await nets.check(pod.id, pod.ns);
    await nets.teardown(pod.id, pod.ns);
    expect(await linkExists(pod.ns, 'eth0')).toBe(false);
    expect(await linkExists(pod.ns, 'eth1')).toBe(false);
  });

  it('serially: the same', async () => {
    const pod = await newPod();
    const r = await nets.setup(pod.id, pod.ns, { serial: true });
    await expectWired(pod, r);
    await nets.teardown(pod.id, pod.ns);
  });

  it('labels become CNI_ARGS with IgnoreUnknown=1 first (as cached for DEL)', async () => {
    const pod = await newPod();
    await nets.setup(pod.id, pod.ns, { labels: { K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: 'web-0', IgnoreUnknown: 'false' } });
    for (const [net, ifName] of [['cni-loopback', 'lo'], [names[0]!, 'eth0'], [names[1]!, 'eth1']] as const) {
      const raw = JSON.parse(await readFile(join(cacheDir, 'results', `${net}-${pod.id}-${ifName}`), 'utf8')) as { cniArgs: unknown; netns: unknown };
      expect(raw.cniArgs).toEqual([
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAMESPACE', 'default'],
        ['K8S_POD_NAME', 'web-0'],
      ]);
      expect(raw.netns).toBe(pod.ns);
    }
    await nets.teardown(pod.id, pod.ns);
  });

  it('a failed setup leaves what succeeded to teardown, which removes it', async () => {
    const dir = join(root, `conf-fail-${randomHex(4)}`);
    await mkdir(dir);
    await writeJSON(join(dir, '10-good.conflist'), JSON.parse(nets.networks[0]!.bytes.toString()) as Record<string, unknown>);
    await writeJSON(join(dir, '20-bad.conflist'), { cniVersion: '1.0.0', name: `bad-${randomHex(4)}`, plugins: [{ type: 'fail-json', passDel: true }] });
    const failing = await Networks.load({ pluginDirs: TEST_PLUGIN_PATH, confDir: dir, cacheDir, maxConfNum: 2 });
    const pod = await newPod();
    cleanup.push(() => failing.teardown(pod.id, pod.ns).catch(() => undefined), 'teardown failing');
    await expect(failing.setup(pod.id, pod.ns)).rejects.toBeInstanceOf(PluginError);
    expect(await linkExists(pod.ns, 'eth0')).toBe(true);
    expect(await allocFiles(0)).toHaveLength(1);
    await failing.teardown(pod.id, pod.ns);
    expect(await linkExists(pod.ns, 'eth0')).toBe(false);
    expect(await allocFiles(0)).toEqual([]);
  });
});

describe('teardown is idempotent', () => {
  it('twice in a row', async () => {
    const pod = await newPod();
    await nets.setup(pod.id, pod.ns);
    await nets.teardown(pod.id, pod.ns);
    await nets.teardown(pod.id, pod.ns);
    expect(await allocFiles(0)).toEqual([]);
    expect(await allocFiles(1)).toEqual([]);
    expect((await readdir(join(cacheDir, 'results'))).filter((f) => f.includes(pod.id))).toEqual([]);
  });

  it('after the namespace is gone: IPs are still released', async () => {
    const pod = await newPod();
    const r = await nets.setup(pod.id, pod.ns);
    expect(r.interfaces['eth0']!.ipConfigs).toHaveLength(1);
    await netnsMgr.remove(pod.ns);
    expect(await exists(pod.ns)).toBe(false);
    await nets.teardown(pod.id, pod.ns);
    await nets.teardown(pod.id, pod.ns);
    expect(await allocFiles(0)).toEqual([]);
    expect(await allocFiles(1)).toEqual([]);
    expect((await readdir(join(cacheDir, 'results'))).filter((f) => f.includes(pod.id))).toEqual([]);
  });

  it('with no cache entries: DEL from the current config still releases everything', async () => {
    const pod = await newPod();
    await nets.setup(pod.id, pod.ns);
    for (const f of (await readdir(join(cacheDir, 'results'))).filter((f) => f.includes(pod.id))) {
      await rm(join(cacheDir, 'results', f));
    }
    await nets.teardown(pod.id, pod.ns);
    expect(await linkExists(pod.ns, 'eth0')).toBe(false);
    expect(await linkExists(pod.ns, 'eth1')).toBe(false);
    expect(await allocFiles(0)).toEqual([]);
    expect(await allocFiles(1)).toEqual([]);
  });

  it('for a pod that was never set up', async () => {
    const pod = await newPod();
    await nets.teardown(pod.id, pod.ns);
    await nets.teardown(pod.id, '');
  });
});

// The result cache must be byte-compatible with Go libcni's (cnitool, containerd and podnet
// DEL each other's attachments), private to root, and crash-safe.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CNIConfig,
  ResultCache,
  confListFromBytes,
  decodeCacheEntry,
  encodeCacheEntry,
  type CachedAttachment,
  type JSONObject,
} from '../../src/cni/index.js';
import { Cleanup, TEST_PLUGIN_PATH, randomHex, tmpDir } from '../helpers/env.js';

const cleanup = new Cleanup();
let root: string;

beforeAll(async () => {
  root = cleanup.dir(await tmpDir('podnet-cache-'));
});

afterAll(async () => {
  expect(await cleanup.run()).toEqual([]);
});

async function freshDir(): Promise<string> {
  const d = join(root, randomHex(8));
  await mkdir(d);
  return d;
}

/** Go libcni's cachedInfo field names, in declaration order (json.Marshal keeps it). */
const GO_KEYS = ['kind', 'containerId', 'config', 'ifName', 'networkName', 'netns', 'cniArgs', 'capabilityArgs', 'result'];

const goConflist = Buffer.from(
  JSON.stringify({
    cniVersion: '1.0.0',
    name: 'gonet',
    plugins: [
      { type: 'bridge', bridge: 'cni0', isGateway: true, ipam: { type: 'host-local', subnet: '10.88.0.0/16' } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }),
);

const goResult: JSONObject = {
  cniVersion: '1.0.0',
  interfaces: [
    { name: 'cni0', mac: '6a:33:c8:9a:af:4f' },
    { name: 'veth1', mac: '6a:33:c8:9a:af:50' },
    { name: 'eth0', mac: 'f6:fb:fb:96:96:28', sandbox: '/var/run/netns/x' },
  ],
  ips: [{ interface: 2, address: '10.88.0.5/16', gateway: '10.88.0.1' }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.88.0.1' }],
  dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
};

const goCapabilityArgs = { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] };

/** What Go's json.Marshal(cachedInfo) writes for an attachment (maps with sorted keys, as Go does). */
function goCacheFile(containerId: string): string {
  return JSON.stringify({
    kind: 'cniCacheV1',
    containerId,
    config: goConflist.toString('base64'),
    ifName: 'eth0',
    networkName: 'gonet',
    netns: '/var/run/netns/x',
    cniArgs: [
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAME', 'p'],
    ],
    capabilityArgs: goCapabilityArgs,
    result: goResult,
  });
}

describe('reading a cache file written by Go libcni', () => {
  it('ResultCache.get returns every field', async () => {
    const dir = await freshDir();
    await mkdir(join(dir, 'results'), { mode: 0o700 });
    await writeFile(join(dir, 'results', 'gonet-ctr1-eth0'), goCacheFile('ctr1'), { mode: 0o600 });
    const entry = await new ResultCache(dir).get('gonet', 'ctr1', 'eth0');
    expect(entry).toBeDefined();
    expect(entry!.containerID).toBe('ctr1');
    expect(entry!.ifName).toBe('eth0');
    expect(entry!.networkName).toBe('gonet');
    expect(entry!.netns).toBe('/var/run/netns/x');
    expect(entry!.config.equals(goConflist)).toBe(true);
    expect(entry!.cniArgs).toEqual([
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAME', 'p'],
    ]);
    expect(entry!.capabilityArgs).toEqual(goCapabilityArgs);
    expect(entry!.result).toEqual(goResult);
  });

  it('getNetworkListCachedConfig gives back the list and the attachment args', async () => {
    const dir = await freshDir();
    await mkdir(join(dir, 'results'));
    await writeFile(join(dir, 'results', 'gonet-ctr2-eth0'), goCacheFile('ctr2'));
    const cni = new CNIConfig({ path: TEST_PLUGIN_PATH, cacheDir: dir });
    const cached = await cni.getNetworkListCachedConfig('gonet', { containerID: 'ctr2', netNS: '', ifName: 'eth0' });
    expect(cached).toBeDefined();
    expect(cached!.list.name).toBe('gonet');
    expect(cached!.list.cniVersion).toBe('1.0.0');
    expect(cached!.list.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap']);
    expect([...cached!.list.plugins[1].capabilities]).toEqual(['portMappings']);
    expect(cached!.list.bytes.equals(goConflist)).toBe(true);
    expect(cached!.rt.containerID).toBe('ctr2');
    expect(cached!.rt.ifName).toBe('eth0');
    expect(cached!.rt.args).toEqual([
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAME', 'p'],
    ]);
    expect(cached!.rt.capabilityArgs).toEqual(goCapabilityArgs);
    expect(await cni.getNetworkListCachedConfig('gonet', { containerID: 'other', netNS: '', ifName: 'eth0' })).toBeUndefined();
  });

  it('getNetworkListCachedResult gives the result, converted to the asking list’s version', async () => {
    const dir = await freshDir();
    await mkdir(join(dir, 'results'));
    await writeFile(join(dir, 'results', 'gonet-ctr3-eth0'), goCacheFile('ctr3'));
    const cni = new CNIConfig({ path: TEST_PLUGIN_PATH, cacheDir: dir });
    const rt = { containerID: 'ctr3', netNS: '/var/run/netns/x', ifName: 'eth0' };
    const list = confListFromBytes(goConflist);
    expect(await cni.getNetworkListCachedResult(list, rt)).toEqual(goResult);
    const old = confListFromBytes(Buffer.from(goConflist.toString().replace('"1.0.0"', '"0.4.0"')));
    const as040 = await cni.getNetworkListCachedResult(old, rt);
    expect(as040?.cniVersion).toBe('0.4.0');
    expect(as040).toMatchObject({ ips: [{ version: '4', interface: 2, address: '10.88.0.5/16', gateway: '10.88.0.1' }] });
    const atts = await cni.getCachedAttachments('ctr3');
    expect(atts).toHaveLength(1);
    expect(atts[0].networkName).toBe('gonet');
  });

  it('re-encoding a Go entry gives Go’s JSON back (same keys, same order, same values)', () => {
    const go = goCacheFile('ctr4');
    const ours = encodeCacheEntry(decodeCacheEntry(Buffer.from(go))!).toString();
    expect(Object.keys(JSON.parse(ours) as object)).toEqual(GO_KEYS);
    expect(JSON.parse(ours)).toEqual(JSON.parse(go));
  });

  it('files that are not cniCacheV1 entries are ignored', () => {
    expect(decodeCacheEntry(Buffer.from('{"kind":"cniCacheV2","containerId":"a","ifName":"eth0","networkName":"n"}'))).toBeUndefined();
    expect(decodeCacheEntry(Buffer.from('not json'))).toBeUndefined();
    expect(decodeCacheEntry(Buffer.from('{"kind":"cniCacheV1"}'))).toBeUndefined();
  });
});

describe('what we write', () => {
  it('an ADD writes Go’s keys and values, config as base64 of the list bytes', async () => {
    const dir = await freshDir();
    const cni = new CNIConfig({ path: TEST_PLUGIN_PATH, cacheDir: dir });
    const record = join(dir, 'record.log');
    const bytes = Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name: 'ours', plugins: [{ type: 'record-gc', recordFile: record }] }));
    const list = confListFromBytes(bytes);
    const rt = {
      containerID: 'ctr5',
      netNS: '/var/run/netns/y',
      ifName: 'net1',
      args: [
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAMESPACE', 'default'],
      ] as Array<[string, string]>,
      capabilityArgs: { portMappings: [{ hostPort: 1, containerPort: 2, protocol: 'udp' }] },
    };
    await cni.addNetworkList(list, rt);
    const raw = JSON.parse(await readFile(join(dir, 'results', 'ours-ctr5-net1'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(raw)).toEqual(GO_KEYS);
    expect(raw['kind']).toBe('cniCacheV1');
    expect(raw['containerId']).toBe('ctr5');
    expect(Buffer.from(raw['config'] as string, 'base64').equals(bytes)).toBe(true);
    expect(raw['config']).toBe(bytes.toString('base64'));
    expect(raw['ifName']).toBe('net1');
    expect(raw['networkName']).toBe('ours');
    expect(raw['netns']).toBe('/var/run/netns/y');
    expect(raw['cniArgs']).toEqual(rt.args);
    expect(raw['capabilityArgs']).toEqual(rt.capabilityArgs);
    expect(raw['result']).toEqual({ cniVersion: '1.1.0' });
  });

  it('deferCacheWrites: ADD hands the caller its cache write and DEL its removal; DEL takes a pre-read entry as prevResult', async () => {
    const dir = await freshDir();
    const cni = new CNIConfig({ path: TEST_PLUGIN_PATH, cacheDir: dir });
    const record = join(dir, 'record.log');
    const list = confListFromBytes(Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name: 'deferred', plugins: [{ type: 'record-gc', recordFile: record }] })));
    const rt = { containerID: 'ctr6', netNS: '/var/run/netns/z', ifName: 'eth0' };
    const writes: Array<Promise<void>> = [];
    await cni.addNetworkList(list, rt, { deferCacheWrites: writes });
    expect(writes).toHaveLength(1);
    await Promise.all(writes);
    const entry = await cni.getCachedAttachment('deferred', rt);
    expect(entry?.result).toEqual({ cniVersion: '1.1.0' });

    // The entry the caller read is what DEL sends, not a second read of the file.
    const removals: Array<Promise<void>> = [];
    await cni.delNetworkList(list, rt, { deferCacheWrites: removals, cached: { ...entry!, result: { cniVersion: '1.1.0', dns: { nameservers: ['10.0.0.53'] } } } });
    expect(removals).toHaveLength(1);
    await Promise.all(removals);
    expect(await readdir(join(dir, 'results'))).toEqual([]);
    const del = (await readFile(record, 'utf8')).trim().split('\n').find((l) => l.startsWith('DEL\t'))!;
    const stdin = JSON.parse(del.split('\t')[3]) as { prevResult?: unknown };
    expect(stdin.prevResult).toEqual({ cniVersion: '1.1.0', dns: { nameservers: ['10.0.0.53'] } });
  });

  it('leaves out empty optional fields, as Go’s omitempty does', () => {
    const a: CachedAttachment = { containerID: 'c', ifName: 'eth0', networkName: 'n', config: Buffer.from('{}'), cniArgs: [], capabilityArgs: {} };
    const raw = JSON.parse(encodeCacheEntry(a).toString()) as Record<string, unknown>;
    expect(Object.keys(raw)).toEqual(['kind', 'containerId', 'config', 'ifName', 'networkName']);
  });

  it('files are 0600 in a 0700 results dir', async () => {
    const dir = await freshDir();
    const cache = new ResultCache(dir);
    await cache.put({ containerID: 'm', ifName: 'eth0', networkName: 'modes', config: Buffer.from('{}') });
    expect((await stat(join(dir, 'results'))).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'results', 'modes-m-eth0'))).mode & 0o777).toBe(0o600);
  });

  it('writes atomically: no temp files left, concurrent writers leave one whole entry', async () => {
    const dir = await freshDir();
    const cache = new ResultCache(dir);
    const writes = Array.from({ length: 25 }, (_, i) =>
      cache.put({ containerID: 'at', ifName: 'eth0', networkName: 'atomic', config: Buffer.from(`{"n":${i}}`), result: { cniVersion: '1.0.0', n: i } }),
    );
    await Promise.all(writes);
    expect(await readdir(join(dir, 'results'))).toEqual(['atomic-at-eth0']);
    const entry = await cache.get('atomic', 'at', 'eth0');
    const n = entry?.result?.['n'];
    expect(typeof n).toBe('number');
    expect(entry!.config.toString()).toBe(`{"n":${n as number}}`);
    await cache.delete('atomic', 'at', 'eth0');
    await cache.delete('atomic', 'at', 'eth0');
    expect(await readdir(join(dir, 'results'))).toEqual([]);
  });
});

describe('listing', () => {
  it('list() returns entries sorted by file name; list(id) only that container’s, exactly', async () => {
    const dir = await freshDir();
    const cache = new ResultCache(dir);
    const put = (networkName: string, containerID: string, ifName: string): Promise<void> =>
      cache.put({ containerID, ifName, networkName, config: Buffer.from('{}') });
    await put('net-b', 'abc', 'eth0');
    await put('net-a', 'abc', 'eth1');
    await put('net-a', 'abc-def', 'eth0');
    await put('net-abc', 'xyz', 'eth0');
    await put('n', 'xabc', 'eth0');
    await put('abc', 'abc', 'lo');
    // Not entries: a foreign file, a temp file, another kind.
    await writeFile(join(dir, 'results', 'README'), 'hello');
    await writeFile(join(dir, 'results', 'net-a-abc-eth2.tmp-123456'), encodeCacheEntry({ containerID: 'abc', ifName: 'eth2', networkName: 'net-a', config: Buffer.alloc(0) }));
    await writeFile(join(dir, 'results', 'net-z-abc-eth0'), '{"kind":"other","containerId":"abc","ifName":"eth0","networkName":"net-z"}');

    const all = await cache.list();
    expect(all.map((e) => `${e.networkName}/${e.containerID}/${e.ifName}`)).toEqual([
      'abc/abc/lo',
      'n/xabc/eth0',
      'net-a/abc-def/eth0',
      'net-a/abc/eth1',
      'net-abc/xyz/eth0',
      'net-b/abc/eth0',
    ]);
    const mine = await cache.list('abc');
    expect(mine.map((e) => `${e.networkName}/${e.ifName}`)).toEqual(['abc/lo', 'net-a/eth1', 'net-b/eth0']);
    expect(await cache.list('abc-def')).toHaveLength(1);
    expect(await cache.list('nobody')).toEqual([]);
    expect(await new ResultCache(join(dir, 'missing')).list()).toEqual([]);
  });
});

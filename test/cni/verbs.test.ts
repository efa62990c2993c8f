// CHECK, GC, STATUS, VERSION and runtimeConfig: what each verb sends, when it is skipped, and
// what it does to real attachments.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CNIConfig,
  MultiError,
  PluginError,
  confListFromBytes,
  resultIPs,
  toCurrent,
  type NetworkConfigList,
  type RuntimeConf,
} from '../../src/cni/index.js';
import { NetnsManager } from '../../src/netns/netns.js';
import {
  Cleanup,
  TEST_PLUGIN_PATH,
  hostLocalIpam,
  linkExists,
  natRulesMatching,
  randomHex,
  removeEmptyPortmapChains,
  tmpDir,
  uniqueSubnet,
  withHostLock, pathExists } from '../helpers/env.js';

const cleanup = new Cleanup();
let root: string;
let cacheDir: string;
let dataDir: string;
let netns: NetnsManager;
let cni: CNIConfig;
let portmapChainsBefore = true;

const exists = pathExists;

beforeAll(async () => {
  root = cleanup.dir(await tmpDir('podnet-verbs-'));
  cacheDir = join(root, 'cache');
  dataDir = join(root, 'ipam');
  netns = new NetnsManager(join(root, 'netns'));
  cni = new CNIConfig({ path: TEST_PLUGIN_PATH, cacheDir });
  portmapChainsBefore = (await natRulesMatching('-N CNI-HOSTPORT-DNAT')).length > 0;
});

afterAll(async () => {
  const errors = await cleanup.run();
  if (!portmapChainsBefore) await withHostLock('iptables', removeEmptyPortmapChains);
  expect(errors).toEqual([]);
  expect(await netns.list()).toEqual([]);
});

function mkList(obj: Record<string, unknown>): NetworkConfigList {
  return confListFromBytes(Buffer.from(JSON.stringify(obj)));
}

function fakeRt(containerID = `c-${randomHex(10)}`, ifName = 'eth0'): RuntimeConf {
  return { containerID, netNS: join(root, 'no-such-netns'), ifName };
}

interface Recorded {
  command: string;
  containerID: string;
  ifName: string;
  stdin: Record<string, unknown>;
}

/** The calls record-gc appended to its file. */
async function recorded(file: string): Promise<Recorded[]> {
  if (!(await exists(file))) return [];
  return (await readFile(file, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [command, containerID, ifName, ...rest] = line.split('\t');
      return { command: command, containerID: containerID, ifName: ifName, stdin: JSON.parse(rest.join('\t')) as Record<string, unknown> };
    });
}

function recordFile(): string {
  return join(root, `record-${randomHex(8)}.log`);
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('CHECK', () => {
  it('is refused for a 0.3.1 list without running any plugin', async () => {
    const record = recordFile();
    const list = mkList({ cniVersion: '0.3.1', name: `ck-${randomHex(6)}`, plugins: [{ type: 'record-gc', recordFile: record }] });
    const rt = fakeRt();
    await cni.addNetworkList(list, rt);
    await expect(cni.checkNetworkList(list, rt)).rejects.toThrow(/does not support the CHECK command/);
    expect((await recorded(record)).map((r) => r.command)).toEqual(['ADD']);
    await cni.delNetworkList(list, rt);
  });

  it('is skipped (success, no plugin run) when the list sets disableCheck', async () => {
    // fail-json would fail any CHECK; with disableCheck it must never run.
    const list = mkList({ cniVersion: '1.0.0', name: `dc-${randomHex(6)}`, disableCheck: true, plugins: [{ type: 'fail-json' }] });
    await expect(cni.checkNetworkList(list, fakeRt())).resolves.toBeUndefined();
    const record = recordFile();
    const rec = mkList({ cniVersion: '1.0.0', name: `dr-${randomHex(6)}`, disableCheck: true, plugins: [{ type: 'record-gc', recordFile: record }] });
    const rt = fakeRt();
    await cni.addNetworkList(rec, rt);
    await cni.checkNetworkList(rec, rt);
    expect((await recorded(record)).map((r) => r.command)).toEqual(['ADD']);
    await cni.delNetworkList(rec, rt);
  });

  it('runs every plugin with the cached result as prevResult', async () => {
    const record = recordFile();
    const list = mkList({ cniVersion: '1.0.0', name: `cp-${randomHex(6)}`, plugins: [{ type: 'record-gc', recordFile: record }, { type: 'record-gc', recordFile: record, second: true }] });
    const rt = fakeRt();
    await cni.addNetworkList(list, rt);
    await cni.checkNetworkList(list, rt);
    const checks = (await recorded(record)).filter((r) => r.command === 'CHECK');
    expect(checks).toHaveLength(2);
    for (const c of checks) {
      expect(c.stdin['prevResult']).toEqual({ cniVersion: '1.0.0' });
      expect(c.containerID).toBe(rt.containerID);
    }
    expect(checks[1].stdin['second']).toBe(true);
    await cni.delNetworkList(list, rt);
  });
});

describe('GC', () => {
  async function addBridge(list: NetworkConfigList): Promise<{ ns: string; rt: RuntimeConf; ip: string }> {
    const ns = await netns.create();
    cleanup.push(() => netns.remove(ns), `netns ${ns}`);
    const rt: RuntimeConf = { containerID: `c-${randomHex(10)}`, netNS: ns, ifName: 'eth0' };
    cleanup.push(() => cni.delNetworkList(list, rt).catch(() => undefined), `DEL ${rt.containerID}`);
    const result = await cni.addNetworkList(list, rt);
    return { ns, rt, ip: resultIPs(toCurrent(result))[0].ip };
  }

  function bridgeList(name: string, extra: Record<string, unknown> = {}): NetworkConfigList {
    const bridge = cleanup.link(`pn${randomHex(6)}`);
    return mkList({
      cniVersion: '1.0.0',
      name,
      ...extra,
      plugins: [{ type: 'bridge', bridge, isGateway: false, ipMasq: false, ipam: hostLocalIpam(uniqueSubnet(), dataDir) }],
    });
  }

  it('removes attachments that are not valid any more (real bridge + host-local) and keeps the valid ones', async () => {
    const list = bridgeList(`gc-${randomHex(6)}`);
    const keep = await addBridge(list);
    const stale = await addBridge(list);
    const cacheFile = (rt: RuntimeConf): string => join(cacheDir, 'results', `${list.name}-${rt.containerID}-${rt.ifName}`);
    expect(await exists(join(dataDir, list.name, stale.ip))).toBe(true);

    await cni.gcNetworkList(list, { validAttachments: [{ containerID: keep.rt.containerID, ifname: 'eth0' }] });

    expect(await exists(join(dataDir, list.name, stale.ip))).toBe(false);
    expect(await exists(cacheFile(stale.rt))).toBe(false);
    expect(await linkExists(stale.ns, 'eth0')).toBe(false);
    expect(await exists(join(dataDir, list.name, keep.ip))).toBe(true);
    expect(await exists(cacheFile(keep.rt))).toBe(true);
    expect(await linkExists(keep.ns, 'eth0')).toBe(true);

    await cni.delNetworkList(list, keep.rt);
    expect(await exists(join(dataDir, list.name, keep.ip))).toBe(false);
  });

  it('does nothing when the list sets disableGC', async () => {
    const name = `ng-${randomHex(6)}`;
    const list = bridgeList(name);
    const a = await addBridge(list);
    const disabled = mkList({ ...(JSON.parse(list.bytes.toString()) as Record<string, unknown>), disableGC: true });
    expect(disabled.disableGC).toBe(true);
    await cni.gcNetworkList(disabled, { validAttachments: [] });
    expect(await exists(join(dataDir, name, a.ip))).toBe(true);
    expect(await linkExists(a.ns, 'eth0')).toBe(true);
    expect(await cni.getCachedAttachments(a.rt.containerID)).toHaveLength(1);

    const record = recordFile();
    const rec = mkList({ cniVersion: '1.1.0', name: `ngr-${randomHex(6)}`, disableGC: true, plugins: [{ type: 'record-gc', recordFile: record }] });
    await cni.gcNetworkList(rec, { validAttachments: [] });
    expect(await recorded(record)).toEqual([]);
    await cni.delNetworkList(list, a.rt);
  });

  it('1.1.0: sends GC to every plugin with cni.dev/valid-attachments and no capabilities', async () => {
    const record = recordFile();
    const list = mkList({
      cniVersion: '1.1.0',
      name: `g11-${randomHex(6)}`,
      plugins: [
        { type: 'record-gc', recordFile: record, capabilities: { portMappings: true }, keep: 'me' },
        { type: 'record-gc', recordFile: record, which: 2 },
      ],
    });
    const valid = [
      { containerID: 'pod-a', ifname: 'eth0' },
      { containerID: 'pod-b', ifname: 'net1' },
    ];
    await cni.gcNetworkList(list, { validAttachments: valid });
    const calls = await recorded(record);
    expect(calls.map((c) => c.command)).toEqual(['GC', 'GC']);
    for (const c of calls) {
      expect(c.containerID).toBe('');
      expect(c.ifName).toBe('');
      expect(c.stdin['cni.dev/valid-attachments']).toEqual(valid);
      expect(c.stdin['name']).toBe(list.name);
      expect(c.stdin['cniVersion']).toBe('1.1.0');
      expect(c.stdin).not.toHaveProperty('capabilities');
      expect(c.stdin).not.toHaveProperty('runtimeConfig');
      expect(c.stdin).not.toHaveProperty('prevResult');
    }
    expect(calls[0].stdin['keep']).toBe('me');
    expect(calls[1].stdin['which']).toBe(2);
  });

  it('1.1.0: DELs stale cached attachments first, then GCs', async () => {
    const record = recordFile();
    const list = mkList({ cniVersion: '1.1.0', name: `gs-${randomHex(6)}`, plugins: [{ type: 'record-gc', recordFile: record }] });
    const keep = fakeRt('keep-me');
    const stale = fakeRt('stale-one', 'net1');
    await cni.addNetworkList(list, keep);
    await cni.addNetworkList(list, stale);
    await cni.gcNetworkList(list, { validAttachments: [{ containerID: 'keep-me', ifname: 'eth0' }] });
    const calls = (await recorded(record)).slice(2);
    expect(calls.map((c) => [c.command, c.containerID, c.ifName])).toEqual([
      ['DEL', 'stale-one', 'net1'],
      ['GC', '', ''],
    ]);
    expect((await cni.getCachedAttachments()).filter((a) => a.networkName === list.name).map((a) => a.containerID)).toEqual(['keep-me']);
    await cni.delNetworkList(list, keep);
  });

  it('1.1.0: keeps going past a failing plugin and reports its error', async () => {
    const record = recordFile();
    const list = mkList({ cniVersion: '1.1.0', name: `gf-${randomHex(6)}`, plugins: [{ type: 'record-gc', failGC: true }, { type: 'record-gc', recordFile: record }] });
    const err = await rejection(cni.gcNetworkList(list, { validAttachments: [] }));
    expect(err).toBeInstanceOf(PluginError);
    expect((err as PluginError).verb).toBe('GC');
    expect((err as PluginError).plugin).toBe('record-gc');
    expect((err as PluginError).code).toBe(11);
    expect((await recorded(record)).map((c) => c.command)).toEqual(['GC']);
  });

  it('1.1.0: a plugin that speaks at most 1.0.0 (the real loopback) gets no GC, and that is no error', async () => {
    const record = recordFile();
    const list = mkList({ cniVersion: '1.1.0', name: `gold-${randomHex(6)}`, plugins: [{ type: 'loopback' }, { type: 'record-gc', recordFile: record }] });
    await cni.gcNetworkList(list, { validAttachments: [] });
    await cni.getStatusNetworkList(list);
    expect((await recorded(record)).map((c) => c.command)).toEqual(['GC', 'STATUS']);
  });

  it('before 1.1.0 no GC verb is sent', async () => {
    const record = recordFile();
    const list = mkList({ cniVersion: '1.0.0', name: `g10-${randomHex(6)}`, plugins: [{ type: 'record-gc', recordFile: record }] });
    await cni.gcNetworkList(list, { validAttachments: [] });
    expect(await recorded(record)).toEqual([]);
  });
});

describe('STATUS', () => {
  it('1.1.0: sends STATUS to every plugin without attachment fields or capabilities', async () => {
    const record = recordFile();
    const list = mkList({
      cniVersion: '1.1.0',
      name: `st-${randomHex(6)}`,
      plugins: [
        { type: 'record-gc', recordFile: record, capabilities: { bandwidth: true } },
        { type: 'record-gc', recordFile: record },
      ],
    });
    await cni.getStatusNetworkList(list);
    const calls = await recorded(record);
    expect(calls.map((c) => c.command)).toEqual(['STATUS', 'STATUS']);
    for (const c of calls) {
      expect(c.stdin['cniVersion']).toBe('1.1.0');
      expect(c.stdin['name']).toBe(list.name);
      expect(c.stdin).not.toHaveProperty('capabilities');
      expect(c.stdin).not.toHaveProperty('cni.dev/valid-attachments');
      expect(c.containerID).toBe('');
    }
  });

  it('an unavailable plugin (code 50) surfaces as PluginError', async () => {
    const record = recordFile();
    const list = mkList({ cniVersion: '1.1.0', name: `sf-${randomHex(6)}`, plugins: [{ type: 'record-gc', recordFile: record, failStatus: true }] });
    const err = await rejection(cni.getStatusNetworkList(list));
    expect(err).toBeInstanceOf(PluginError);
    const pe = err as PluginError;
    expect(pe.code).toBe(50);
    expect(pe.verb).toBe('STATUS');
    expect(pe.plugin).toBe('record-gc');
    expect(pe.msg).toBe('plugin not available');
  });

  it('before 1.1.0 a list is ready without asking its plugins', async () => {
    const list = mkList({ cniVersion: '1.0.0', name: `s10-${randomHex(6)}`, plugins: [{ type: 'fail-json' }] });
    await expect(cni.getStatusNetworkList(list)).resolves.toBeUndefined();
  });
});

describe('VERSION and validation', () => {
  it('the real bridge plugin speaks 1.0.0', async () => {
    const info = await cni.getVersionInfo('bridge');
    expect(info.supportedVersions).toContain('1.0.0');
    expect(info.supportedVersions).toContain('0.3.1');
    expect(typeof info.cniVersion).toBe('string');
  });

  it('the only-031 shim answers its own versions', async () => {
    expect((await cni.getVersionInfo('only-031')).supportedVersions).toEqual(['0.3.0', '0.3.1']);
  });

  it('validateNetworkList returns the declared capabilities and names plugins that are missing', async () => {
    const ok = mkList({
      cniVersion: '1.0.0',
      name: `v-${randomHex(6)}`,
      plugins: [{ type: 'bridge' }, { type: 'portmap', capabilities: { portMappings: true } }, { type: 'bandwidth', capabilities: { bandwidth: true, dns: false } }],
    });
    expect(await cni.validateNetworkList(ok)).toEqual(['bandwidth', 'portMappings']);
    const bad = mkList({ cniVersion: '1.0.0', name: `vb-${randomHex(6)}`, plugins: [{ type: 'bridge' }, { type: 'not-installed-podnet' }] });
    const err = await rejection(cni.validateNetworkList(bad));
    expect(err).toBeInstanceOf(MultiError);
    expect((err as Error).message).toContain('not-installed-podnet');
  });
});

describe('runtimeConfig', () => {
  it('holds exactly the capabilities the plugin declares and the caller gave', async () => {
    const record = recordFile();
    const list = mkList({
      cniVersion: '1.0.0',
      name: `rc-${randomHex(6)}`,
      plugins: [
        { type: 'record-gc', recordFile: record, capabilities: { portMappings: true, bandwidth: true, dns: false } },
        { type: 'record-gc', recordFile: record },
      ],
    });
    const portMappings = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
    const rt: RuntimeConf = { ...fakeRt(), capabilityArgs: { portMappings, dns: { servers: ['1.1.1.1'] }, ipRanges: [[{ subnet: '10.1.0.0/16' }]] } };
    await cni.addNetworkList(list, rt);
    const [first, second] = await recorded(record);
    expect(first.stdin['runtimeConfig']).toEqual({ portMappings });
    expect(first.stdin).not.toHaveProperty('capabilities');
    expect(first.stdin).not.toHaveProperty('prevResult');
    expect(second.stdin).not.toHaveProperty('runtimeConfig');
    expect(second.stdin['prevResult']).toEqual({ cniVersion: '1.0.0' });
    await cni.delNetworkList(list, rt);
    const del = (await recorded(record)).filter((r) => r.command === 'DEL');
    expect(del.map((d) => d.stdin['runtimeConfig'])).toEqual([undefined, { portMappings }]);
  });

  it('real portmap forwards a port only when it declares the portMappings capability', async () => {
    const hostPort = 40000 + Math.floor(Math.random() * 20000);
    const portMappings = [{ hostPort, containerPort: 9090, protocol: 'tcp' }];
    const make = (declare: boolean): NetworkConfigList =>
      mkList({
        cniVersion: '1.0.0',
        name: `rp-${randomHex(6)}`,
        plugins: [
          { type: 'bridge', bridge: cleanup.link(`pn${randomHex(6)}`), isGateway: false, ipMasq: false, ipam: hostLocalIpam(uniqueSubnet(), dataDir) },
          declare ? { type: 'portmap', snat: false, capabilities: { portMappings: true } } : { type: 'portmap', snat: false },
        ],
      });
    const ips: Record<string, string> = {};
    for (const declare of [true, false]) {
      const list = make(declare);
      const ns = await netns.create();
      cleanup.push(() => netns.remove(ns), `netns ${ns}`);
      const rt: RuntimeConf = { containerID: `c-${randomHex(10)}`, netNS: ns, ifName: 'eth0', capabilityArgs: { portMappings } };
      cleanup.push(() => withHostLock('iptables', () => cni.delNetworkList(list, rt).catch(() => undefined)), `DEL ${rt.containerID}`);
      const result = await withHostLock('iptables', () => cni.addNetworkList(list, rt));
      const ip = resultIPs(toCurrent(result))[0].ip;
      ips[String(declare)] = ip;
      const rules = await natRulesMatching(`${ip}:9090`);
      if (declare) {
        expect(rules.length).toBeGreaterThan(0);
        expect(rules.join('\n')).toContain(`--dport ${hostPort}`);
      } else {
        expect(rules).toEqual([]);
      }
      await withHostLock('iptables', () => cni.delNetworkList(list, rt));
      expect(await natRulesMatching(ip)).toEqual([]);
    }
    expect(Object.keys(ips)).toHaveLength(2);
    expect((await readdir(join(cacheDir, 'results'))).filter((f) => f.includes('rp-'))).toEqual([]);
  });
});

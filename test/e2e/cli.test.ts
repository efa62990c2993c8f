import { afterEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cnitoolContainerID } from '../../src/cmd/cnitool.js';
import { NetnsManager } from '../../src/netns/netns.js';
import { CNIConfig } from '../../src/cni/cni.js';
import { loadNetworkByName } from '../../src/cni/config.js';
import { NetnsLedger } from '../../src/cri/store.js';
import { Cleanup, hostLocalIpam, ipAddrsIn, PLUGIN_DIRS, randomHex, tmpDir, uniqueSubnet } from '../helpers/env.js';

const PODNET = join(import.meta.dirname, '../../bin/podnet');

interface Setup {
  root: string;
  confDir: string;
  cacheDir: string;
  dataDir: string;
  ns: string;
  network: string;
  env: Record<string, string>;
}

describe('bin/podnet', () => {
  const cleanup = new Cleanup();
  afterEach(async () => {
    expect(await cleanup.run()).toEqual([]);
  });

  async function setup(): Promise<Setup> {
    const root = cleanup.dir(await tmpDir('podnet-cli-'));
    const confDir = join(root, 'net.d');
    const cacheDir = join(root, 'cache');
    const dataDir = join(root, 'ipam');
    await mkdir(confDir);
    const network = `cli-${randomHex(6)}`;
    const bridge = cleanup.link(`pn${randomHex(6)}`);
    const subnet = uniqueSubnet();
    await writeFile(
      join(confDir, '10-cli.conflist'),
      JSON.stringify({ cniVersion: '1.0.0', name: network, plugins: [{ type: 'bridge', bridge, ipam: hostLocalIpam(subnet, dataDir) }] }),
    );
    const netns = new NetnsManager(join(root, 'netns'));
    const ns = await netns.create();
    cleanup.push(() => netns.remove(ns), 'remove netns');
    return { root, confDir, cacheDir, dataDir, ns, network, env: { NETCONFPATH: confDir, CNI_PATH: PLUGIN_DIRS.join(':') } };
  }

  it('add / check / del round trip like cnitool, with cnitool\'s container id and cache', async () => {
    const s = await setup();
    const add = await execa(PODNET, ['add', s.network, s.ns, '--cache-dir', s.cacheDir], { env: s.env });
    const result = JSON.parse(add.stdout) as { ips: Array<{ address: string }> };
    const ip = result.ips[0]!.address.split('/')[0]!;
    expect((await ipAddrsIn(s.ns, 'eth0')).map((a) => a.local)).toContain(ip);
    const id = cnitoolContainerID(s.ns);
    expect(id).toMatch(/^cnitool-[0-9a-f]{20}$/);
    const cacheFile = join(s.cacheDir, 'results', `${s.network}-${id}-eth0`);
    const cached = JSON.parse(await readFile(cacheFile, 'utf8')) as { kind: string; containerId: string };
    expect(cached).toMatchObject({ kind: 'cniCacheV1', containerId: id });
    await execa(PODNET, ['check', s.network, s.ns, '--cache-dir', s.cacheDir], { env: s.env });
    await execa(PODNET, ['del', s.network, s.ns, '--cache-dir', s.cacheDir], { env: s.env });
    expect(await readdir(join(s.dataDir, s.network))).not.toContain(ip);
    await expect(readFile(cacheFile)).rejects.toThrow();
  });

  it('honours CNI_IFNAME and CNI_CONTAINERID, and fails with the cause on stderr', async () => {
    const s = await setup();
    const env = { ...s.env, CNI_IFNAME: 'net7', CNI_CONTAINERID: 'my-ctr' };
    await execa(PODNET, ['add', s.network, s.ns, '--cache-dir', s.cacheDir], { env });
    expect(await ipAddrsIn(s.ns, 'net7')).not.toHaveLength(0);
    expect(await readdir(join(s.cacheDir, 'results'))).toEqual([`${s.network}-my-ctr-net7`]);
    await execa(PODNET, ['del', s.network, s.ns, '--cache-dir', s.cacheDir], { env });
    const missing = await execa(PODNET, ['add', 'no-such-net', s.ns, '--cache-dir', s.cacheDir], { env, reject: false });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('no network named "no-such-net"');
  });

  it('validate flags a missing binary, a bad cniVersion and an unknown capability', async () => {
    const s = await setup();
    await writeFile(join(s.confDir, '20-missing.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'missing', plugins: [{ type: 'no-such-plugin' }] }));
    await writeFile(join(s.confDir, '30-version.conflist'), JSON.stringify({ cniVersion: '9.9.9', name: 'badver', plugins: [{ type: 'bridge' }] }));
    await writeFile(join(s.confDir, '40-cap.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'cap', plugins: [{ type: 'portmap', capabilities: { portMapings: true } }] }));
    const r = await execa(PODNET, ['validate', '--conf-dir', s.confDir, '--cni-bin-dir', PLUGIN_DIRS.join(':'), '--json'], { reject: false });
    expect(r.exitCode).toBe(1);
    const rows = JSON.parse(r.stdout) as Array<{ file: string; network: string; verdict: string }>;
    const verdict = (needle: string): string => rows.find((x) => x.file.includes(needle))!.verdict;
    expect(verdict('10-cli')).toBe('ok');
    expect(verdict('20-missing')).toMatch(/failed to find plugin "no-such-plugin"/);
    expect(verdict('30-version')).toMatch(/no supported CNI version/);
    expect(verdict('40-cap')).toMatch(/unknown capability "portMapings"/);
  });

  it('doctor finds each kind of planted leak and --fix releases them', async () => {
    const s = await setup();
    const stateDir = join(s.root, 'state');
    const netnsDir = join(s.root, 'netns');
    const flags = ['--state-dir', stateDir, '--netns-dir', netnsDir, '--cache-dir', s.cacheDir, '--conf-dir', s.confDir, '--cni-bin-dir', PLUGIN_DIRS.join(':'), '--json'];
    // 1. a namespace of ours (in the ledger) that no sandbox owns
    const netns = new NetnsManager(netnsDir);
    const orphanNs = await netns.create();
    cleanup.push(() => netns.remove(orphanNs), 'remove orphan netns');
    await new NetnsLedger(stateDir).add(orphanNs);
    // 2. a cache entry (and its allocation) whose namespace is gone
    const cni = new CNIConfig({ path: PLUGIN_DIRS, cacheDir: s.cacheDir });
    const list = await loadNetworkByName(s.confDir, s.network);
    const gone = await netns.create();
    const added = (await cni.addNetworkList(list, { containerID: 'leaky-ctr', netNS: gone, ifName: 'eth0' })) as { ips: Array<{ address: string }> };
    const leakedIP = added.ips[0]!.address.split('/')[0]!;
    await netns.remove(gone);
    // 3. a host-local allocation with neither sandbox nor cache entry
    const ipamDir = join(s.dataDir, s.network);
    const strayIP = `${leakedIP.split('.').slice(0, 3).join('.')}.200`;
    await writeFile(join(ipamDir, strayIP), 'orphan-ctr\r\neth0');

    const found = await execa(PODNET, ['doctor', ...flags], { reject: false });
    expect(found.exitCode).toBe(1);
    const leaks = (JSON.parse(found.stdout) as { leaks: Array<{ kind: string; path: string; containerID: string }> }).leaks;
    expect(leaks.map((l) => l.kind).sort()).toEqual(['cache', 'ipam', 'netns']);
    expect(leaks.find((l) => l.kind === 'netns')!.path).toBe(orphanNs);
    expect(leaks.find((l) => l.kind === 'cache')!.containerID).toBe('leaky-ctr');
    expect(leaks.find((l) => l.kind === 'ipam')!.containerID).toBe('orphan-ctr');

    const fixed = await execa(PODNET, ['doctor', '--fix', ...flags], { reject: false });
    expect(fixed.exitCode).toBe(0);
    expect(await netns.list()).not.toContain(orphanNs);
    expect(await readdir(join(s.cacheDir, 'results'))).toEqual([]);
    const left = await readdir(ipamDir);
    expect(left).not.toContain(leakedIP);
    expect(left).not.toContain(strayIP);
    const again = await execa(PODNET, ['doctor', ...flags]);
    expect(JSON.parse(again.stdout)).toMatchObject({ leaks: [] });
  });

  it('prints usage with exit 2 for an unknown command', async () => {
    const r = await execa(PODNET, ['frobnicate'], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
    expect((await execa(PODNET, ['version'])).stdout).toMatch(/^podnet \d+\.\d+\.\d+$/);
  });
});

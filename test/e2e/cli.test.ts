import { afterEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cnitoolContainerID } from '../../src/cmd/cnitool.js';
import { NetnsManager } from '../../src/netns/netns.js';
import { CNIConfig } from '../../src/cni/cni.js';
import { loadNetworkByName } from '../../src/cni/config.js';
import { NetnsLedger } from '../../src/engine/store.js';
import {
  Cleanup,
  hostLocalIpam,
  ipAddrsIn,
  linkExists,
  linkInfo,
  nsExec,
  pathExists,
  PLUGIN_DIRS,
  randomHex,
  shOk,
  startNetnsHolder,
  TEST_PLUGIN_PATH,
  tmpDir,
  uniqueSubnet,
} from '../helpers/env.js';

const PODNET = join(import.meta.dirname, '../../bin/podnet');

interface Setup {
  root: string;
  confDir: string;
  cacheDir: string;
  dataDir: string;
  ns: string;
  network: string;
  /** The bridge of the network (made by the bridge plugin on the first ADD). */
  bridge: string;
  netns: NetnsManager;
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
    return { root, confDir, cacheDir, dataDir, ns, network, bridge, netns, env: { NETCONFPATH: confDir, CNI_PATH: PLUGIN_DIRS.join(':') } };
  }

  it('--help on its own and after every command prints the usage and exits 0; a bad command exits 2', async () => {
    for (const args of [['--help'], ['-h'], ['help'], ...['add', 'del', 'check', 'gc', 'status', 'validate', 'sandboxes', 'inspect', 'network-status', 'doctor'].map((c) => [c, '--help'])]) {
      const r = await execa(PODNET, args, { reject: false });
      expect(r.exitCode, args.join(' ')).toBe(0);
      expect(r.stdout, args.join(' ')).toContain('usage: podnet <command>');
    }
    const bad = await execa(PODNET, ['frobnicate'], { reject: false });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('unknown command "frobnicate"');
  });

  it('add / check / del round trip like cnitool, with cnitool\'s container id and cache', async () => {
    const s = await setup();
    const add = await execa(PODNET, ['add', s.network, s.ns, '--cache-dir', s.cacheDir], { env: s.env });
    const result = JSON.parse(add.stdout) as { ips: Array<{ address: string }> };
    const ip = result.ips[0].address.split('/')[0];
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
    // cnitool's (libcni LoadNetworkConf's) answer.
    expect(missing.stderr).toContain(`no net configuration with name "no-such-net" in ${s.confDir}`);
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
    // libcni takes a newer cniVersion as written and sends it: a plugin that does not speak it is flagged.
    expect(verdict('30-version')).toMatch(/bridge does not speak 9\.9\.9/);
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
    const leakedIP = added.ips[0].address.split('/')[0];
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
    // Nothing left but the network's bridge, now idle: listed for information, not a leak.
    const again = await execa(PODNET, ['doctor', ...flags]);
    expect(JSON.parse(again.stdout)).toEqual({
      leaks: [{ kind: 'bridge', path: s.bridge, containerID: '', informational: true, detail: expect.stringContaining(`bridge of ${s.network}: no ports`) }],
      fixed: false,
      errors: [],
    });
    const text = await execa(PODNET, ['doctor', ...flags.filter((f) => f !== '--json')]);
    expect(text.stdout).toMatch(new RegExp(`^bridge +${s.bridge} +bridge of ${s.network}: .*\\[info\\]$`, 'm'));
    expect(text.stdout).toMatch(/^no leaks found$/m);
    // --fix leaves an idle bridge alone: the next pod of the network reuses it.
    expect((await execa(PODNET, ['doctor', '--fix', ...flags])).exitCode).toBe(0);
    expect(await linkExists(undefined, s.bridge)).toBe(true);
  });

  it('doctor finds veths of the conf dir\'s bridges with no pod behind them; --fix deletes only those', async () => {
    const s = await setup();
    const stateDir = join(s.root, 'state');
    const flags = ['--state-dir', stateDir, '--netns-dir', join(s.root, 'netns'), '--cache-dir', s.cacheDir, '--conf-dir', s.confDir, '--cni-bin-dir', PLUGIN_DIRS.join(':')];
    // A real attachment on the bridge (it also makes the bridge): its veth must never be reported.
    const add = await execa(PODNET, ['add', s.network, s.ns, '--cache-dir', s.cacheDir], { env: s.env });
    cleanup.push(() => execa(PODNET, ['del', s.network, s.ns, '--cache-dir', s.cacheDir], { env: s.env }), 'podnet del');
    const podVeth = (JSON.parse(add.stdout) as { interfaces: Array<{ name: string }> }).interfaces[1].name;
    expect((await linkInfo(undefined, podVeth))?.kind).toBe('veth');
    const veth = (): string => `pv${randomHex(8)}`;
    const enslave = (name: string, bridge: string): Promise<string> => shOk('ip', ['link', 'set', name, 'master', bridge]);

    // 1. leaked: a port whose peer is in the host namespace, enslaved nowhere.
    const [hostEnd, hostPeer] = [cleanup.link(veth()), veth()];
    await shOk('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', hostPeer]);
    await enslave(hostEnd, s.bridge);
    // 2. leaked: a port whose peer is in a namespace no sandbox owns, held by a process, mounted nowhere.
    const holder = await startNetnsHolder();
    cleanup.push(() => holder.stop(), `kill netns holder ${holder.pid}`);
    const [strayEnd, strayPeer] = [cleanup.link(veth()), veth()];
    await shOk('ip', ['link', 'add', strayEnd, 'type', 'veth', 'peer', 'name', strayPeer, 'netns', String(holder.pid)]);
    await enslave(strayEnd, s.bridge);
    // 3. left alone: a port whose peer is in a bind-mounted namespace that is nobody's we know of
    //    (another runtime's pod, possibly mid-ADD, looks like this).
    const otherNetns = new NetnsManager(join(s.root, 'other-netns'));
    const otherNs = await otherNetns.create();
    cleanup.push(() => otherNetns.remove(otherNs), 'remove other netns');
    const [mountedEnd, mountedPeer] = [cleanup.link(veth()), veth()];
    await shOk('ip', ['link', 'add', mountedEnd, 'type', 'veth', 'peer', 'name', mountedPeer, 'netns', otherNs]);
    await enslave(mountedEnd, s.bridge);
    // 4. left alone: a host-side pair from our bridge to another bridge (an interconnect).
    const otherBridge = cleanup.link(`pn${randomHex(8)}`);
    await shOk('ip', ['link', 'add', otherBridge, 'type', 'bridge']);
    const [linkEnd, linkPeer] = [cleanup.link(veth()), veth()];
    await shOk('ip', ['link', 'add', linkEnd, 'type', 'veth', 'peer', 'name', linkPeer]);
    await enslave(linkEnd, s.bridge);
    await enslave(linkPeer, otherBridge);
    // 5. out of scope: a bridge no config of the conf dir names, with a port like 1.
    const [outEnd, outPeer] = [cleanup.link(veth()), veth()];
    await shOk('ip', ['link', 'add', outEnd, 'type', 'veth', 'peer', 'name', outPeer]);
    await shOk('ip', ['link', 'set', outPeer, 'master', otherBridge]);

    const found = await execa(PODNET, ['doctor', '--json', ...flags], { reject: false });
    expect(found.stderr).toBe('');
    expect(found.exitCode).toBe(1);
    const leaks = (JSON.parse(found.stdout) as { leaks: Array<{ kind: string; path: string; detail: string; ifindex?: number }> }).leaks;
    expect(leaks.map((l) => `${l.kind} ${l.path}`).sort()).toEqual([`link ${hostEnd}`, `link ${strayEnd}`].sort());
    expect(leaks.find((l) => l.path === hostEnd)!.detail).toBe(`port of bridge ${s.bridge}: its veth peer is in the host namespace (${hostPeer}), enslaved nowhere; no pod behind it`);
    expect(leaks.find((l) => l.path === strayEnd)!.detail).toMatch(new RegExp(`^port of bridge ${s.bridge}: its veth peer is in namespace nsid \\d+, which is no sandbox's`));
    expect(leaks.find((l) => l.path === strayEnd)!.ifindex).toBe((JSON.parse(await shOk('ip', ['-j', 'link', 'show', 'dev', strayEnd])) as Array<{ ifindex: number }>)[0].ifindex);
    const table = await execa(PODNET, ['doctor', ...flags], { reject: false });
    expect(table.exitCode).toBe(1);
    expect(table.stdout.split('\n')[0].split(/\s+/)).toEqual(['KIND', 'PATH', 'DETAIL']);
    expect(table.stdout).toMatch(new RegExp(`^link +${hostEnd} +port of bridge ${s.bridge}: `, 'm'));

    const fixed = await execa(PODNET, ['doctor', '--fix', ...flags], { reject: false });
    expect(fixed.stderr).toBe('');
    expect(fixed.exitCode).toBe(0);
    expect(fixed.stdout).toMatch(/^fixed 2 of 2$/m);
    // Both ends of each leaked pair are gone, the peer inside the holder's namespace too.
    for (const name of [hostEnd, hostPeer, strayEnd]) expect(await linkExists(undefined, name), name).toBe(false);
    expect((await nsExec(holder.path, 'ip', ['link', 'show', 'dev', strayPeer])).exitCode).not.toBe(0);
    // Everything else is untouched: the pod, the mounted namespace's port, the interconnect.
    for (const name of [podVeth, mountedEnd, linkEnd, linkPeer, outEnd, outPeer, s.bridge, otherBridge]) expect(await linkExists(undefined, name), name).toBe(true);
    expect(await linkExists(otherNs, mountedPeer)).toBe(true);
    expect((await ipAddrsIn(s.ns, 'eth0')).length).toBeGreaterThan(0);
    const again = await execa(PODNET, ['doctor', '--json', ...flags]);
    expect(JSON.parse(again.stdout)).toEqual({ leaks: [], fixed: false, errors: [] });
  });

  it('gc <network> DELs every cached attachment of that network (cnitool: no valid attachments); status of a 1.0.0 network runs nothing', async () => {
    const s = await setup();
    const ns2 = await s.netns.create();
    cleanup.push(() => s.netns.remove(ns2), 'remove netns 2');
    // Another network in the same cache dir, on the same namespace: gc of the first leaves it be.
    const other = `cli-${randomHex(6)}`;
    const otherBridge = cleanup.link(`pn${randomHex(6)}`);
    await writeFile(join(s.confDir, '20-other.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: other, plugins: [{ type: 'bridge', bridge: otherBridge, ipam: hostLocalIpam(uniqueSubnet(), s.dataDir) }] }));
    const cache = ['--cache-dir', s.cacheDir];
    const ipOf = (stdout: string): string => (JSON.parse(stdout) as { ips: Array<{ address: string }> }).ips[0].address.split('/')[0];
    const ip1 = ipOf((await execa(PODNET, ['add', s.network, s.ns, ...cache], { env: s.env })).stdout);
    const ip2 = ipOf((await execa(PODNET, ['add', s.network, ns2, ...cache], { env: s.env })).stdout);
    const otherEnv = { ...s.env, CNI_IFNAME: 'net1' };
    const ip3 = ipOf((await execa(PODNET, ['add', other, s.ns, ...cache], { env: otherEnv })).stdout);
    cleanup.push(() => execa(PODNET, ['del', other, s.ns, ...cache], { env: otherEnv }), 'podnet del other');
    expect(await readdir(join(s.cacheDir, 'results'))).toHaveLength(3);

    const status = await execa(PODNET, ['status', s.network, ...cache], { env: s.env, reject: false });
    expect([status.exitCode, status.stdout, status.stderr]).toEqual([0, '', '']);

    const gc = await execa(PODNET, ['gc', s.network, ...cache], { env: s.env, reject: false });
    expect([gc.exitCode, gc.stdout, gc.stderr]).toEqual([0, '', '']);
    expect(await readdir(join(s.cacheDir, 'results'))).toEqual([`${other}-${cnitoolContainerID(s.ns)}-net1`]);
    const held = await readdir(join(s.dataDir, s.network));
    expect(held).not.toContain(ip1);
    expect(held).not.toContain(ip2);
    expect(await ipAddrsIn(s.ns, 'eth0')).toEqual([]);
    expect(await ipAddrsIn(ns2, 'eth0')).toEqual([]);
    expect((await ipAddrsIn(s.ns, 'net1')).map((a) => a.local)).toContain(ip3);
    expect(await readdir(join(s.dataDir, other))).toContain(ip3);
    // Nothing left to collect: a second gc is a no-op.
    expect((await execa(PODNET, ['gc', s.network, ...cache], { env: s.env, reject: false })).exitCode).toBe(0);
  });

  it('gc and status of a 1.1.0 network send GC (no valid attachments) and STATUS to the plugins; a failing STATUS exits 1', async () => {
    const s = await setup();
    const record = join(s.root, 'record.tsv');
    const env = { NETCONFPATH: s.confDir, CNI_PATH: TEST_PLUGIN_PATH.join(':') };
    const cache = ['--cache-dir', s.cacheDir];
    const conf = (name: string, version: string, extra: Record<string, unknown> = {}): string =>
      JSON.stringify({ cniVersion: version, name, plugins: [{ type: 'record-gc', recordFile: record, ...extra }] });
    const v11 = `gc11-${randomHex(6)}`;
    const v10 = `gc10-${randomHex(6)}`;
    const broken = `gcbad-${randomHex(6)}`;
    await writeFile(join(s.confDir, '50-v11.conflist'), conf(v11, '1.1.0'));
    await writeFile(join(s.confDir, '51-v10.conflist'), conf(v10, '1.0.0'));
    await writeFile(join(s.confDir, '52-bad.conflist'), conf(broken, '1.1.0', { failStatus: true }));
    const lines = async (): Promise<Array<{ verb: string; id: string; ifName: string; config: Record<string, unknown> }>> =>
      ((await pathExists(record)) ? await readFile(record, 'utf8') : '')
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [verb = '', id = '', ifName = '', config = '{}'] = l.split('\t');
          return { verb, id, ifName, config: JSON.parse(config) as Record<string, unknown> };
        });

    // 1.0.0 has neither verb: nothing is run.
    expect((await execa(PODNET, ['status', v10, ...cache], { env, reject: false })).exitCode).toBe(0);
    expect((await execa(PODNET, ['gc', v10, ...cache], { env, reject: false })).exitCode).toBe(0);
    expect(await lines()).toEqual([]);

    const status = await execa(PODNET, ['status', v11, ...cache], { env, reject: false });
    expect([status.exitCode, status.stdout, status.stderr]).toEqual([0, '', '']);
    expect(await lines()).toEqual([{ verb: 'STATUS', id: '', ifName: '', config: { cniVersion: '1.1.0', name: v11, type: 'record-gc', recordFile: record } }]);

    const add = await execa(PODNET, ['add', v11, s.ns, ...cache], { env });
    expect(JSON.parse(add.stdout)).toEqual({ cniVersion: '1.1.0' });
    const id = cnitoolContainerID(s.ns);
    const gc = await execa(PODNET, ['gc', v11, ...cache], { env, reject: false });
    expect([gc.exitCode, gc.stdout, gc.stderr]).toEqual([0, '', '']);
    // libcni's order: DEL of each cached attachment, then GC with the valid attachments (none).
    const after = (await lines()).slice(1);
    expect(after.map((l) => [l.verb, l.id, l.ifName])).toEqual([
      ['ADD', id, 'eth0'],
      ['DEL', id, 'eth0'],
      ['GC', '', ''],
    ]);
    expect(after[2].config).toEqual({ cniVersion: '1.1.0', name: v11, type: 'record-gc', recordFile: record, 'cni.dev/valid-attachments': [] });
    expect(await readdir(join(s.cacheDir, 'results'))).toEqual([]);

    const bad = await execa(PODNET, ['status', broken, ...cache], { env, reject: false });
    expect(bad.exitCode).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^podnet: .*plugin not available/);
    expect(bad.stderr).toContain('record-gc');
  });

  it('prints usage with exit 2 for an unknown command', async () => {
    const r = await execa(PODNET, ['frobnicate'], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
    expect((await execa(PODNET, ['version'])).stdout).toMatch(/^podnet \d+\.\d+\.\d+$/);
    // A cnitool verb without its arguments is bad usage too.
    for (const args of [['status'], ['add', 'some-net'], ['del']]) {
      const u = await execa(PODNET, args, { reject: false });
      expect(u.exitCode, args.join(' ')).toBe(2);
      expect(u.stderr, args.join(' ')).toContain(`usage: podnet ${args[0]} <network>`);
    }
  });
});

// Plugins that fail in every way a plugin can: error JSON, garbage, crashes, hangs, missing
// binaries, and a chain that fails half way through ADD.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CNIConfig,
  PluginCanceledError,
  PluginError,
  PluginTimeoutError,
  confListFromBytes,
  type NetworkConfigList,
  type PluginExecEvent,
  type RuntimeConf,
} from '../../src/cni/index.js';
import { NetnsManager } from '../../src/netns/netns.js';
import {
  Cleanup,
  TEST_PLUGIN_PATH,
  hostLocalIpam,
  ipAddrsIn,
  linkExists,
  pidAlive,
  randomHex,
  tmpDir,
  uniqueSubnet,
  waitFor, pathExists } from '../helpers/env.js';

const cleanup = new Cleanup();
let root: string;
let cacheDir: string;
let dataDir: string;
let netns: NetnsManager;
let cni: CNIConfig;
const events: PluginExecEvent[] = [];

const exists = pathExists;

beforeAll(async () => {
  root = cleanup.dir(await tmpDir('podnet-faults-'));
  cacheDir = join(root, 'cache');
  dataDir = join(root, 'ipam');
  netns = new NetnsManager(join(root, 'netns'));
  cni = new CNIConfig({ path: TEST_PLUGIN_PATH, cacheDir, observer: (ev) => events.push(ev) });
});

afterAll(async () => {
  const errors = await cleanup.run();
  expect(errors).toEqual([]);
});

function mkList(name: string, plugins: Array<Record<string, unknown>>, cniVersion = '1.0.0'): NetworkConfigList {
  return confListFromBytes(Buffer.from(JSON.stringify({ cniVersion, name, plugins })));
}

/** Plugins that never touch a namespace still need an absolute CNI_NETNS. */
function fakeRt(): RuntimeConf {
  return { containerID: `c-${randomHex(10)}`, netNS: join(root, 'no-such-netns'), ifName: 'eth0' };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

/** "<plugin pid> <child pid>" as the hang plugin writes it. */
async function hangPids(pidFile: string): Promise<[number, number]> {
  expect(await waitFor(() => exists(pidFile), 5000)).toBe(true);
  const [a, b] = (await readFile(pidFile, 'utf8')).trim().split(' ').map(Number);
  expect(a).toBeGreaterThan(1);
  expect(b).toBeGreaterThan(1);
  return [a, b];
}

async function expectGone(pids: readonly number[]): Promise<void> {
  for (const pid of pids) {
    const gone = await waitFor(async () => !(await pidAlive(pid)), 2000);
    if (!gone) process.kill(pid, 'SIGKILL'); // don't leave it behind even when the test fails
    expect(gone, `pid ${pid} still alive`).toBe(true);
  }
}

describe('plugin failures surface as PluginError', () => {
  it('an error JSON (fail-json) keeps code, msg and details, and names network, plugin and verb', async () => {
    const list = mkList(`fj-${randomHex(6)}`, [{ type: 'fail-json' }]);
    const err = await rejection(cni.addNetworkList(list, fakeRt()));
    expect(err).toBeInstanceOf(PluginError);
    const pe = err as PluginError;
    expect(pe.code).toBe(11);
    expect(pe.msg).toBe('try later');
    expect(pe.details).toBe('injected');
    expect(pe.network).toBe(list.name);
    expect(pe.plugin).toBe('fail-json');
    expect(pe.verb).toBe('ADD');
    expect(pe.message).toContain(list.name);
    expect(pe.message).toContain('fail-json');
    expect(pe.message).toMatch(/\badd\b/i);
    expect(pe.message).toContain('try later');
    expect(pe.message).toContain('injected');
    const ev = events.filter((e) => e.network === list.name);
    expect(ev).toHaveLength(1);
    expect(ev[0].error).toBe(err);
    expect(ev[0].durationMs).toBeGreaterThan(0);
  });

  it('output that is not JSON (garbage) is a decoding failure naming the plugin', async () => {
    const list = mkList(`gb-${randomHex(6)}`, [{ type: 'garbage' }]);
    const err = await rejection(cni.addNetworkList(list, fakeRt()));
    expect(err).toBeInstanceOf(PluginError);
    const pe = err as PluginError;
    expect(pe.code).toBe(6);
    expect(pe.plugin).toBe('garbage');
    expect(pe.message).toContain('garbage');
    expect(pe.message).toMatch(/not JSON/);
    expect(pe.message).toContain('this is {not JSON at all');
    expect(await cni.getCachedAttachments()).toEqual([]);
  });

  it('a crash without JSON (crash) reports the exit status and the stderr text', async () => {
    const list = mkList(`cr-${randomHex(6)}`, [{ type: 'crash' }]);
    const err = await rejection(cni.addNetworkList(list, fakeRt()));
    expect(err).toBeInstanceOf(PluginError);
    const pe = err as PluginError;
    expect(pe.code).toBe(0);
    expect(pe.plugin).toBe('crash');
    expect(pe.message).toContain('exit status 2');
    expect(pe.message).toContain('crash: segmentation violation (injected)');
    expect(pe.stderr).toContain('segmentation violation');
  });

  it('a missing plugin binary is an error naming it', async () => {
    const list = mkList(`mi-${randomHex(6)}`, [{ type: 'no-such-plugin-podnet' }]);
    const err = await rejection(cni.addNetworkList(list, fakeRt()));
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain('no-such-plugin-podnet');
    expect((err as Error).message).toMatch(/failed to find plugin/);
    await expect(cni.getVersionInfo('no-such-plugin-podnet')).rejects.toThrow(/no-such-plugin-podnet/);
  });

  it('the failing DEL keeps the cache entry; a later successful DEL removes it', async () => {
    const name = `dl-${randomHex(6)}`;
    const record = join(root, `${name}.log`);
    const good = mkList(name, [{ type: 'record-gc', recordFile: record }]);
    const failing = mkList(name, [{ type: 'record-gc', recordFile: record }, { type: 'fail-json' }]);
    const rt = fakeRt();
    await cni.addNetworkList(good, rt);
    const file = join(cacheDir, 'results', `${name}-${rt.containerID}-eth0`);
    expect(await exists(file)).toBe(true);
    const err = await rejection(cni.delNetworkList(failing, rt));
    expect(err).toBeInstanceOf(PluginError);
    expect((err as PluginError).verb).toBe('DEL');
    expect(await exists(file)).toBe(true);
    await cni.delNetworkList(good, rt);
    expect(await exists(file)).toBe(false);
  });
});

describe('hanging plugins are killed with their whole process group', () => {
  it('AbortSignal.timeout → PluginTimeoutError, and the plugin and its child are gone', async () => {
    const pidFile = join(root, `hang-${randomHex(6)}.pids`);
    const list = mkList(`hg-${randomHex(6)}`, [{ type: 'hang', pidFile }]);
    const started = Date.now();
    const err = await rejection(cni.addNetworkList(list, fakeRt(), { signal: AbortSignal.timeout(500) }));
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(PluginTimeoutError);
    expect(err).toBeInstanceOf(PluginError);
    const pe = err as PluginTimeoutError;
    expect(pe.plugin).toBe('hang');
    expect(pe.network).toBe(list.name);
    expect(pe.verb).toBe('ADD');
    expect(pe.message).toMatch(/timed out/);
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(5000);
    await expectGone(await hangPids(pidFile));
  });

  it('AbortController.abort() → PluginCanceledError, and the plugin and its child are gone', async () => {
    const pidFile = join(root, `hang-${randomHex(6)}.pids`);
    const list = mkList(`hc-${randomHex(6)}`, [{ type: 'hang', pidFile }]);
    const ac = new AbortController();
    const pending = rejection(cni.addNetworkList(list, fakeRt(), { signal: ac.signal }));
    const pids = await hangPids(pidFile);
    expect(await pidAlive(pids[0])).toBe(true);
    expect(await pidAlive(pids[1])).toBe(true);
    ac.abort(new Error('client went away'));
    const err = await pending;
    expect(err).toBeInstanceOf(PluginCanceledError);
    expect(err).not.toBeInstanceOf(PluginTimeoutError);
    expect((err as PluginCanceledError).plugin).toBe('hang');
    expect((err as Error).message).toMatch(/canceled.*client went away/);
    await expectGone(pids);
  });

  it('an already-aborted signal cancels before the plugin is started', async () => {
    const pidFile = join(root, `hang-${randomHex(6)}.pids`);
    const list = mkList(`ha-${randomHex(6)}`, [{ type: 'hang', pidFile }]);
    const err = await rejection(cni.addNetworkList(list, fakeRt(), { signal: AbortSignal.abort() }));
    expect(err).toBeInstanceOf(PluginCanceledError);
    await new Promise((r) => setTimeout(r, 200));
    expect(await exists(pidFile)).toBe(false);
  });

  it('a timeout also applies to DEL', async () => {
    const pidFile = join(root, `hang-${randomHex(6)}.pids`);
    const list = mkList(`hd-${randomHex(6)}`, [{ type: 'hang', pidFile }]);
    const err = await rejection(cni.delNetworkList(list, fakeRt(), { signal: AbortSignal.timeout(300) }));
    expect(err).toBeInstanceOf(PluginTimeoutError);
    expect((err as PluginTimeoutError).verb).toBe('DEL');
    await expectGone(await hangPids(pidFile));
  });
});

describe('a chain that fails half way through ADD', () => {
  it('names the failing plugin, and the caller’s DEL releases what the first plugin made', async () => {
    const ns = await netns.create();
    cleanup.push(() => netns.remove(ns), `netns ${ns}`);
    const bridge = cleanup.link(`pn${randomHex(6)}`);
    const subnet = uniqueSubnet();
    const list = mkList(`mc-${randomHex(6)}`, [
      { type: 'bridge', bridge, isGateway: false, ipMasq: false, ipam: hostLocalIpam(subnet, dataDir) },
      { type: 'fail-json', passDel: true },
    ]);
    const rt: RuntimeConf = { containerID: `c-${randomHex(10)}`, netNS: ns, ifName: 'eth0' };
    cleanup.push(() => cni.delNetworkList(list, rt).catch(() => undefined), 'DEL mid-chain');

    const err = await rejection(cni.addNetworkList(list, rt));
    expect(err).toBeInstanceOf(PluginError);
    expect((err as PluginError).plugin).toBe('fail-json');
    expect((err as Error).message).toContain('type="fail-json"');
    // The first plugin did its work, and nothing was cached for a failed ADD.
    const addrs = await ipAddrsIn(ns, 'eth0');
    expect(addrs.some((a) => a.local.startsWith(`${subnet.prefix}.`))).toBe(true);
    const allocDir = join(dataDir, list.name);
    const allocated = (await readdir(allocDir)).filter((f) => f.startsWith(`${subnet.prefix}.`));
    expect(allocated).toHaveLength(1);
    expect(await cni.getCachedAttachments(rt.containerID)).toEqual([]);

    await cni.delNetworkList(list, rt);
    expect(await linkExists(ns, 'eth0')).toBe(false);
    expect((await readdir(allocDir)).filter((f) => f.startsWith(`${subnet.prefix}.`))).toEqual([]);
    expect(await exists(join(cacheDir, 'results', `${list.name}-${rt.containerID}-eth0`))).toBe(false);
  });
});

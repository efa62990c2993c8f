// libcni's semantics, checked from the plugin's side: what a recording plugin (record-env) is sent
// and what the library makes of its answers. Each case names the libcni behaviour it follows.
import { describe, it, expect, beforeAll, afterAll, beforeEach } from 'vitest';
import { chmod, copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CNIConfig,
  ConfigError,
  InvalidRequestError,
  PluginError,
  cacheFilePath,
  confListFromBytes,
  confListFromConfBytes,
  loadConfDir,
  loadNetworkConf,
  validateIfName,
  type NetworkConfigList,
  type PluginStderrEvent,
  type RuntimeConf,
} from '../../src/cni/index.js';
import { Cleanup, FAULT_PLUGIN_DIR, randomHex, tmpDir, writeJSON } from '../helpers/env.js';

const cleanup = new Cleanup();
let root: string;
let bin: string;
let rec: string;
let cacheDir: string;
let cni: CNIConfig;
const stderrEvents: PluginStderrEvent[] = [];

beforeAll(async () => {
  root = cleanup.dir(await tmpDir('podnet-libcni-'));
  bin = join(root, 'bin');
  rec = join(bin, 'record-env.rec');
  cacheDir = join(root, 'cache');
  await mkdir(bin, { recursive: true });
  for (const p of ['record-env', 'fail-json', 'crash']) {
    await copyFile(join(FAULT_PLUGIN_DIR, p), join(bin, p));
    await chmod(join(bin, p), 0o755);
  }
  cni = new CNIConfig({ path: [bin], cacheDir, onStderr: (ev) => stderrEvents.push(ev) });
});

beforeEach(async () => {
  await rm(rec, { recursive: true, force: true });
  await mkdir(rec);
  stderrEvents.length = 0;
});

afterAll(async () => {
  expect(await cleanup.run()).toEqual([]);
});

interface Call {
  env: Map<string, string>;
  stdin: Record<string, unknown>;
}

/** Every call record-env saw since the test began, in order. */
async function calls(): Promise<Call[]> {
  const n = (await readdir(rec)).filter((f) => f.endsWith('.env')).length;
  const out: Call[] = [];
  for (let i = 1; i <= n; i++) {
    const env = new Map<string, string>();
    for (const line of (await readFile(join(rec, `${i}.env`), 'utf8')).split('\n').filter(Boolean)) {
      const eq = line.indexOf('=');
      env.set(line.slice(0, eq), line.slice(eq + 1));
    }
    out.push({ env, stdin: JSON.parse(await readFile(join(rec, `${i}.stdin`), 'utf8')) as Record<string, unknown> });
  }
  return out;
}

const callsOf = async (verb: string): Promise<Call[]> => (await calls()).filter((c) => c.env.get('CNI_COMMAND') === verb);

function mkList(obj: Record<string, unknown>): NetworkConfigList {
  return confListFromBytes(Buffer.from(JSON.stringify(obj)));
}

function rt(ifName = 'eth0'): RuntimeConf {
  return { containerID: `c-${randomHex(8)}`, netNS: join(root, 'ns-not-needed'), ifName };
}

async function answer(result: unknown): Promise<string> {
  const file = join(root, `answer-${randomHex(6)}.json`);
  await writeFile(file, JSON.stringify(result));
  return file;
}

const RESULT_040 = { cniVersion: '0.4.0', interfaces: [{ name: 'eth0', sandbox: '/x' }], ips: [{ version: '4', address: '10.9.8.7/24', gateway: '10.9.8.1', interface: 0 }] };

describe('environment (libcni invoke.Args.AsEnv)', () => {
  const SIX = ['CNI_ARGS', 'CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_NETNS', 'CNI_PATH'];

  it('sets all six CNI_* variables for every verb, empty where they do not apply; VERSION gets libcni\'s dummies', async () => {
    const list = mkList({ cniVersion: '1.1.0', name: `env-${randomHex(4)}`, plugins: [{ type: 'record-env' }] });
    const r = rt();
    await cni.addNetworkList(list, r);
    await cni.checkNetworkList(list, r);
    await cni.delNetworkList(list, r);
    await cni.gcNetworkList(list, { validAttachments: [] });
    await cni.getStatusNetworkList(list);
    await cni.getVersionInfo('record-env');
    const all = await calls();
    expect(new Set(all.map((c) => c.env.get('CNI_COMMAND')))).toEqual(new Set(['ADD', 'CHECK', 'DEL', 'GC', 'STATUS', 'VERSION']));
    for (const c of all) expect([...c.env.keys()].sort(), c.env.get('CNI_COMMAND')).toEqual(SIX);
    for (const verb of ['ADD', 'CHECK', 'DEL']) {
      const [c] = await callsOf(verb);
      expect(Object.fromEntries(c.env)).toEqual({ CNI_COMMAND: verb, CNI_CONTAINERID: r.containerID, CNI_NETNS: r.netNS, CNI_IFNAME: 'eth0', CNI_ARGS: '', CNI_PATH: bin });
    }
    for (const verb of ['GC', 'STATUS']) {
      const [c] = await callsOf(verb);
      expect(Object.fromEntries(c.env)).toEqual({ CNI_COMMAND: verb, CNI_CONTAINERID: '', CNI_NETNS: '', CNI_IFNAME: '', CNI_ARGS: '', CNI_PATH: bin });
    }
    for (const c of await callsOf('VERSION')) {
      expect(Object.fromEntries(c.env)).toEqual({ CNI_COMMAND: 'VERSION', CNI_CONTAINERID: '', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_ARGS: '', CNI_PATH: 'dummy' });
    }
  });

  it('CNI_ARGS is the pairs joined with ";" as libcni stringifies them', async () => {
    const list = mkList({ cniVersion: '1.0.0', name: `args-${randomHex(4)}`, plugins: [{ type: 'record-env' }] });
    await cni.addNetworkList(list, { ...rt(), args: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'web-0']] });
    expect((await callsOf('ADD'))[0].env.get('CNI_ARGS')).toBe('IgnoreUnknown=1;K8S_POD_NAME=web-0');
  });

  it('no plugin dirs at all is libcni\'s "no paths provided", prefixed with the plugin', async () => {
    const none = new CNIConfig({ path: [], cacheDir });
    const list = mkList({ cniVersion: '1.0.0', name: `nopath-${randomHex(4)}`, plugins: [{ type: 'record-env' }] });
    const err = await none.addNetworkList(list, rt()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect((err as Error).message).toMatch(/^plugin type="record-env" failed \(add\): no paths provided/);
    expect(await calls()).toEqual([]);
  });
});

describe('versions across a chain', () => {
  it('a plugin answering in an older version than the list\'s is accepted, and its result carried on as it is', async () => {
    const list = mkList({
      cniVersion: '1.0.0',
      name: `old-${randomHex(4)}`,
      plugins: [{ type: 'record-env', answerFile: await answer(RESULT_040) }, { type: 'record-env' }],
    });
    const r = rt();
    const result = await cni.addNetworkList(list, r);
    // The last plugin answered {"cniVersion":"1.0.0"}; the first one's 0.4.0 result reached it unconverted.
    expect(result.cniVersion).toBe('1.0.0');
    const adds = await callsOf('ADD');
    expect(adds.map((c) => c.stdin['cniVersion'])).toEqual(['1.0.0', '1.0.0']);
    expect(adds[1].stdin['prevResult']).toEqual(RESULT_040);
  });

  it('the older result, when it is the chain\'s last, is returned and cached as it is; CHECK and DEL get it in the list\'s version', async () => {
    const name = `oldlast-${randomHex(4)}`;
    const list = mkList({ cniVersion: '1.0.0', name, plugins: [{ type: 'record-env', answerFile: await answer(RESULT_040) }] });
    const r = rt();
    const result = await cni.addNetworkList(list, r);
    expect(result).toEqual(RESULT_040);
    const cached = JSON.parse(await readFile(cacheFilePath(cacheDir, name, r.containerID, r.ifName), 'utf8')) as { result: unknown };
    expect(cached.result).toEqual(RESULT_040);
    await cni.checkNetworkList(list, r);
    await cni.delNetworkList(list, r);
    const in100 = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/x' }], ips: [{ address: '10.9.8.7/24', gateway: '10.9.8.1', interface: 0 }] };
    expect((await callsOf('CHECK'))[0].stdin['prevResult']).toEqual(in100);
    expect((await callsOf('DEL'))[0].stdin['prevResult']).toEqual(in100);
  });

  it('a list without cniVersion loads, is sent as libcni sends it (""), and is read as 0.1.0', async () => {
    const list = mkList({ name: `nover-${randomHex(4)}`, plugins: [{ type: 'record-env' }] });
    expect(list.declaredVersion).toBe('');
    expect(list.cniVersion).toBe('0.1.0');
    const r = rt();
    // record-env answers {"cniVersion":""}: no version, so the request's (libcni fixupResultVersion).
    const result = await cni.addNetworkList(list, r);
    expect(result.cniVersion).toBe('0.1.0');
    expect((await callsOf('ADD'))[0].stdin['cniVersion']).toBe('');
    // Before 0.4.0 there is no CHECK, and DEL gets no prevResult.
    await expect(cni.checkNetworkList(list, r)).rejects.toThrow(/does not support the CHECK command/);
    await cni.delNetworkList(list, r);
    expect((await callsOf('DEL'))[0].stdin).not.toHaveProperty('prevResult');
  });

  it('a cniVersion newer than ours is sent as written; its plugin\'s answer is read in the version it names', async () => {
    const list = mkList({ cniVersion: '1.2.3', name: `newer-${randomHex(4)}`, plugins: [{ type: 'record-env', answerFile: await answer({ cniVersion: '1.1.0', ips: [{ address: '10.9.8.7/24' }] }) }] });
    expect([list.declaredVersion, list.cniVersion]).toEqual(['1.2.3', '1.1.0']);
    const result = await cni.addNetworkList(list, rt());
    expect(result.cniVersion).toBe('1.1.0');
    expect((await callsOf('ADD'))[0].stdin['cniVersion']).toBe('1.2.3');
  });

  it('cniVersions: the highest entry not newer than ours is what plugins get', async () => {
    const list = mkList({ cniVersion: '0.4.0', cniVersions: ['1.0.0', '99.0.0'], name: `vers-${randomHex(4)}`, plugins: [{ type: 'record-env' }] });
    await cni.addNetworkList(list, rt());
    expect((await callsOf('ADD'))[0].stdin['cniVersion']).toBe('1.0.0');
  });
});

describe('cniVersions selection (libcni conf_test "Version selection")', () => {
  const sel = (obj: Record<string, unknown>): string => mkList({ name: 'test', plugins: [{ type: 'foo' }], ...obj }).declaredVersion;

  it('selects the maximum version, skipping versions newer than ours', () => {
    expect(sel({ cniVersions: ['1.1.0', '0.4.0', '1.0.0'] })).toBe('1.1.0');
    expect(sel({ cniVersions: ['99.0.0', '1.1.0', '0.4.0', '1.0.0'] })).toBe('1.1.0');
  });

  it('fails on an entry that is no version', () => {
    expect(() => sel({ cniVersions: ['1.1.0', '0.4.0', '1.0.f'] })).toThrow(ConfigError);
    expect(() => sel({ cniVersions: ['1.1.0', 7] })).toThrow(/"cniVersions" entry 1 must be a string/);
    expect(() => sel({ cniVersions: '1.1.0' })).toThrow(/"cniVersions" must be a list/);
  });

  it('falls back to cniVersion, merges it with cniVersions, and keeps an empty list empty', () => {
    expect(sel({ cniVersion: '1.2.3' })).toBe('1.2.3');
    expect(sel({ cniVersion: '1.0.0', cniVersions: ['0.1.0', '0.4.0'] })).toBe('1.0.0');
    expect(sel({ cniVersions: [] })).toBe('');
    expect(sel({ cniVersion: '1.2.3', cniVersions: [] })).toBe('1.2.3');
    expect(sel({ cniVersion: '1.2.3', cniVersions: ['0.4.0'] })).toBe('0.4.0');
  });

  it('reads "1.0" as 1.0.0, as libcni\'s ParseVersion does, and sends it as written', () => {
    const l = mkList({ cniVersion: '1.0', name: 'short', plugins: [{ type: 'foo' }] });
    expect([l.declaredVersion, l.cniVersion]).toEqual(['1.0', '1.0.0']);
  });
});

describe('boolean fields given as strings (libcni readBool)', () => {
  it('accepts true/false and "true"/"false" in any case, refuses anything else', () => {
    const l = mkList({ cniVersion: '1.1.0', name: 'b', disableCheck: 'TRUE', disableGC: 'true', loadOnlyInlinedPlugins: 'True', plugins: [{ type: 'foo' }] });
    expect([l.disableCheck, l.disableGC, l.loadOnlyInlinedPlugins]).toEqual([true, true, true]);
    const f = mkList({ cniVersion: '1.1.0', name: 'b', disableCheck: 'false', disableGC: 'FALSE', loadOnlyInlinedPlugins: false, plugins: [{ type: 'foo' }] });
    expect([f.disableCheck, f.disableGC, f.loadOnlyInlinedPlugins]).toEqual([false, false, false]);
    expect(() => mkList({ cniVersion: '1.1.0', name: 'b', disableGC: 'adsfasdfasf', plugins: [{ type: 'foo' }] })).toThrow('invalid value "adsfasdfasf" for "disableGC"');
    expect(() => mkList({ cniVersion: '1.1.0', name: 'b', disableCheck: 1, plugins: [{ type: 'foo' }] })).toThrow('invalid type number for "disableCheck"');
  });

  it('disableCheck "true" skips CHECK; disableGC "true" skips GC', async () => {
    const list = mkList({ cniVersion: '1.1.0', name: `dc-${randomHex(4)}`, disableCheck: 'true', disableGC: 'true', plugins: [{ type: 'record-env' }] });
    const r = rt();
    await cni.addNetworkList(list, r);
    await cni.checkNetworkList(list, r);
    await cni.gcNetworkList(list, { validAttachments: [] });
    expect((await calls()).map((c) => c.env.get('CNI_COMMAND'))).toEqual(['ADD']);
    await cni.delNetworkList(list, r);
  });

  it('loadOnlyInlinedPlugins "true" ignores the sibling folder', async () => {
    const dir = cleanup.dir(await tmpDir('podnet-libcni-conf-'));
    await writeJSON(join(dir, 'net.conflist'), { cniVersion: '1.1.0', name: 'inl', loadOnlyInlinedPlugins: 'true', plugins: [{ type: 'record-env' }] });
    await mkdir(join(dir, 'inl'));
    await writeJSON(join(dir, 'inl', 'extra.conf'), { type: 'fail-json' });
    expect((await loadNetworkConf(dir, 'inl')).plugins.map((p) => p.type)).toEqual(['record-env']);
    expect((await loadConfDir(dir)).lists[0].plugins.map((p) => p.type)).toEqual(['record-env']);
  });
});

describe('config lookup by name (libcni LoadNetworkConf, what cnitool uses)', () => {
  async function dirWith(files: Record<string, unknown>): Promise<string> {
    const dir = cleanup.dir(await tmpDir('podnet-lookup-'));
    for (const [name, content] of Object.entries(files)) {
      if (typeof content === 'string') await writeFile(join(dir, name), content);
      else await writeJSON(join(dir, name), content);
    }
    return dir;
  }
  const conflist = (name: string, type = 'bridge'): Record<string, unknown> => ({ cniVersion: '1.0.0', name, plugins: [{ type }, { type: 'portmap' }] });

  it('a .conflist wins over a .conf of the same name, whatever the file names; without it the .conf is used', async () => {
    const dir = await dirWith({ '00-first.conf': { cniVersion: '1.0.0', name: 'shared', type: 'ptp' }, '99-last.conflist': conflist('shared') });
    expect((await loadNetworkConf(dir, 'shared')).plugins.map((p) => p.type)).toEqual(['bridge', 'portmap']);
    await rm(join(dir, '99-last.conflist'));
    const single = await loadNetworkConf(dir, 'shared');
    expect(single.plugins.map((p) => p.type)).toEqual(['ptp']);
    expect(single.source).toBe(join(dir, '00-first.conf'));
  });

  it('a malformed or nameless .conflist before the match fails the lookup (the daemon skips it instead)', async () => {
    const broken = await dirWith({ '00-bad.conflist': '{', '50-good.conflist': conflist('good') });
    await expect(loadNetworkConf(broken, 'good')).rejects.toThrow(/00-bad\.conflist: invalid JSON/);
    const nameless = await dirWith({ '00-noname.conflist': { cniVersion: '1.0.0', plugins: [{ type: 'bridge' }] }, '50-good.conflist': conflist('good') });
    await expect(loadNetworkConf(nameless, 'good')).rejects.toThrow(/00-noname\.conflist: missing "name"/);
    // The daemon's policy: report and skip, load the rest.
    const load = await loadConfDir(broken);
    expect(load.lists.map((l) => l.name)).toEqual(['good']);
    expect(load.errors.map((e) => e.file)).toEqual([join(broken, '00-bad.conflist')]);
    // After the match, a broken file is never read.
    const after = await dirWith({ '00-good.conflist': conflist('good'), '99-bad.conflist': '{' });
    expect((await loadNetworkConf(after, 'good')).name).toBe('good');
  });

  it('a nameless .conf matches nothing and is passed over; a malformed or typeless one fails the lookup', async () => {
    const nameless = await dirWith({ '00-noname.conf': { cniVersion: '1.0.0', type: 'ptp' }, '50-good.conf': { cniVersion: '1.0.0', name: 'good', type: 'ptp' } });
    expect((await loadNetworkConf(nameless, 'good')).name).toBe('good');
    const malformed = await dirWith({ '00-bad.conf': '{', '50-good.conf': { cniVersion: '1.0.0', name: 'good', type: 'ptp' } });
    await expect(loadNetworkConf(malformed, 'good')).rejects.toThrow(/00-bad\.conf: invalid JSON/);
    const typeless = await dirWith({ '00-notype.conf': { name: 'x', some: 'value' }, '50-good.conf': { cniVersion: '1.0.0', name: 'good', type: 'ptp' } });
    await expect(loadNetworkConf(typeless, 'good')).rejects.toThrow(/00-notype\.conf: missing "type"/);
  });

  it('not found: libcni\'s two errors', async () => {
    const empty = await dirWith({});
    await expect(loadNetworkConf(empty, 'x')).rejects.toThrow(`no net configurations found in ${empty}`);
    await expect(loadNetworkConf(join(empty, 'missing'), 'x')).rejects.toThrow('no net configurations found in');
    const other = await dirWith({ '10-a.conflist': conflist('a') });
    await expect(loadNetworkConf(other, 'x')).rejects.toThrow(`no net configuration with name "x" in ${other}`);
  });
});

describe('interface names (libcni ValidateInterfaceName, counted in bytes as the kernel does)', () => {
  it('allows 15 bytes and refuses 16, whatever the number of characters', () => {
    expect(() => validateIfName('a'.repeat(15))).not.toThrow();
    expect(() => validateIfName('a'.repeat(16))).toThrow(InvalidRequestError);
    // "é" is two bytes: 14 characters are 15 bytes, 15 characters 16.
    expect(() => validateIfName(`${'a'.repeat(13)}é`)).not.toThrow();
    expect(() => validateIfName(`${'a'.repeat(14)}é`)).toThrow(/1-15 bytes/);
    expect(() => validateIfName('ethé漢字')).not.toThrow();
    expect(() => validateIfName('漢字漢字漢字')).toThrow(/1-15 bytes/);
  });

  it('refuses "", ".", "..", "/", ":" and what Go\'s unicode.IsSpace calls space', () => {
    for (const bad of ['', '.', '..', 'a/b', 'a:b', 'a b', 'a\tb', 'a\u00a0b', 'a\u0085b', 'a\u2003b', 'a\u3000b']) {
      expect(() => validateIfName(bad), JSON.stringify(bad)).toThrow(InvalidRequestError);
    }
    // U+FEFF is no space to Go (nor to the kernel).
    expect(() => validateIfName('a\ufeffb')).not.toThrow();
  });

  it('a multi-byte name within 15 bytes reaches the plugin as it is', async () => {
    const list = mkList({ cniVersion: '1.0.0', name: `ifn-${randomHex(4)}`, plugins: [{ type: 'record-env' }] });
    const r = rt('netzé0');
    await cni.addNetworkList(list, r);
    expect((await callsOf('ADD'))[0].env.get('CNI_IFNAME')).toBe('netzé0');
    await expect(cni.addNetworkList(list, rt('ééééééééé'))).rejects.toThrow(InvalidRequestError);
    await cni.delNetworkList(list, r);
  });
});

describe('plugin output', () => {
  it('stderr of a successful plugin goes to onStderr with plugin, network, verb and attachment', async () => {
    const name = `se-${randomHex(4)}`;
    const list = mkList({ cniVersion: '1.1.0', name, plugins: [{ type: 'record-env', stderr: 'note from the plugin' }] });
    const r = rt();
    await cni.addNetworkList(list, r);
    await cni.getStatusNetworkList(list);
    expect(stderrEvents).toEqual([
      { network: name, plugin: 'record-env', verb: 'ADD', containerID: r.containerID, ifName: 'eth0', stderr: 'note from the plugin\n' },
      { network: name, plugin: 'record-env', verb: 'STATUS', containerID: '', ifName: '', stderr: 'note from the plugin\n' },
    ]);
    await cni.delNetworkList(list, r);
  });

  it('a CNI error reads "msg; details", after libcni\'s list prefix: (add) for ADD, (delete) for DEL; podnet\'s context follows', async () => {
    const name = `er-${randomHex(4)}`;
    const list = mkList({ cniVersion: '1.0.0', name, plugins: [{ type: 'fail-json' }] });
    const r = rt();
    const add = (await cni.addNetworkList(list, r).catch((e: unknown) => e)) as PluginError;
    expect(add).toBeInstanceOf(PluginError);
    expect(add.message).toBe(`plugin type="fail-json" failed (add): try later; injected (network "${name}", code 11)`);
    const del = (await cni.delNetworkList(list, r).catch((e: unknown) => e)) as PluginError;
    expect(del.message).toBe(`plugin type="fail-json" failed (delete): try later; injected (network "${name}", code 11)`);
  });

  it('a plugin config with its own name (a .conf) is named in the prefix, as libcni\'s pluginDescription does', async () => {
    const list = confListFromConfBytes(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'single', type: 'fail-json' })));
    const err = (await cni.addNetworkList(list, rt()).catch((e: unknown) => e)) as PluginError;
    expect(err.message).toMatch(/^plugin type="fail-json" name="single" failed \(add\): try later; injected/);
  });

  it('a plugin that fails without an error JSON is worded as libcni\'s RawExec words it', async () => {
    const list = mkList({ cniVersion: '1.0.0', name: `cr-${randomHex(4)}`, plugins: [{ type: 'crash' }] });
    const err = (await cni.addNetworkList(list, rt()).catch((e: unknown) => e)) as PluginError;
    expect(err.message).toMatch(/^plugin type="crash" failed \(add\): netplugin failed: "crash: segmentation violation \(injected\)\\n": exit status 2/);
  });
});

describe('cache files from before cniCacheV1 (a bare result JSON)', () => {
  it('are the prevResult of CHECK and DEL, converted to the list\'s version; DEL removes them', async () => {
    const name = `legacy-${randomHex(4)}`;
    const list = mkList({ cniVersion: '1.0.0', name, plugins: [{ type: 'record-env' }] });
    const r = rt();
    const file = cacheFilePath(cacheDir, name, r.containerID, r.ifName);
    await mkdir(join(cacheDir, 'results'), { recursive: true });
    await writeFile(file, JSON.stringify({ cniVersion: '0.3.1', ips: [{ version: '4', address: '10.1.2.3/24' }] }));
    const expected = { cniVersion: '1.0.0', ips: [{ address: '10.1.2.3/24' }] };
    expect(await cni.getNetworkListCachedResult(list, r)).toEqual(expected);
    await cni.checkNetworkList(list, r);
    await cni.delNetworkList(list, r);
    expect((await callsOf('CHECK'))[0].stdin['prevResult']).toEqual(expected);
    expect((await callsOf('DEL'))[0].stdin['prevResult']).toEqual(expected);
    await expect(readFile(file)).rejects.toThrow(/ENOENT/);
  });
});

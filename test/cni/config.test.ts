import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CNIConfig,
  ConfigError,
  confListFromBytes,
  confListFromConfBytes,
  loadConfDir,
  loadNetworkByName,
  type ConfDirLoad,
} from '../../src/cni/index.js';
import { Cleanup, TEST_PLUGIN_PATH, tmpDir, writeJSON } from '../helpers/env.js';

const cleanup = new Cleanup();
let root: string;

beforeAll(async () => {
  root = cleanup.dir(await tmpDir('podnet-config-'));
});

afterAll(async () => {
  expect(await cleanup.run()).toEqual([]);
});

/** A fresh conf dir holding the given files (string = written as is, anything else as JSON). */
async function confDir(files: Record<string, unknown>): Promise<string> {
  const dir = await tmpDir('podnet-confdir-');
  cleanup.dir(dir);
  for (const [name, content] of Object.entries(files)) {
    const file = join(dir, name);
    await mkdir(join(file, '..'), { recursive: true });
    if (typeof content === 'string') await writeFile(file, content);
    else await writeJSON(file, content);
  }
  return dir;
}

const list = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  cniVersion: '1.0.0',
  name,
  plugins: [{ type: 'bridge', bridge: 'pn000000' }],
  ...extra,
});

function errorFor(load: ConfDirLoad, dir: string, file: string): string | undefined {
  return load.errors.find((e) => e.file === join(dir, file))?.reason;
}

describe('loadConfDir: file kinds and order', () => {
  it('loads .conf, .conflist and .json sorted by file name, ignoring other files and directories', async () => {
    const dir = await confDir({
      '30-c.json': list('net-c'),
      '10-b.conflist': list('net-b'),
      '20-a.conf': { cniVersion: '0.4.0', name: 'net-a', type: 'ptp', mtu: 1400 },
      '05-ignored.txt': list('net-txt'),
      '00-ignored.conflist.bak': list('net-bak'),
      '01-dir.conf/inner.conf': { cniVersion: '1.0.0', name: 'inner', type: 'ptp' },
    });
    const load = await loadConfDir(dir);
    expect(load.errors).toEqual([]);
    expect(load.lists.map((l) => l.name)).toEqual(['net-b', 'net-a', 'net-c']);
    expect(load.lists.map((l) => l.source)).toEqual([join(dir, '10-b.conflist'), join(dir, '20-a.conf'), join(dir, '30-c.json')]);
  });

  it('turns a .conf into a one-plugin list that keeps every plugin key', async () => {
    const dir = await confDir({
      'a.conf': { cniVersion: '0.4.0', name: 'single', type: 'ptp', mtu: 1400, ipam: { type: 'host-local' }, disableCheck: true },
    });
    const { lists, errors } = await loadConfDir(dir);
    expect(errors).toEqual([]);
    expect(lists).toHaveLength(1);
    const l = lists[0];
    expect(l.name).toBe('single');
    expect(l.cniVersion).toBe('0.4.0');
    expect(l.disableCheck).toBe(true);
    expect(l.plugins).toHaveLength(1);
    expect(l.plugins[0].type).toBe('ptp');
    expect(l.plugins[0].raw).toMatchObject({ type: 'ptp', mtu: 1400, ipam: { type: 'host-local' } });
    // The cached bytes must describe the list, so a DEL from the cache runs the same plugin.
    const again = confListFromBytes(l.bytes);
    expect(again.name).toBe('single');
    expect(again.plugins.map((p) => p.type)).toEqual(['ptp']);
  });

  it('reads a .json holding a single plugin as a .conf and one holding "plugins" as a list', async () => {
    const dir = await confDir({
      'a.json': { cniVersion: '1.0.0', name: 'json-single', type: 'macvlan' },
      'b.json': list('json-list', { plugins: [{ type: 'bridge' }, { type: 'portmap', capabilities: { portMappings: true } }] }),
    });
    const { lists, errors } = await loadConfDir(dir);
    expect(errors).toEqual([]);
    expect(lists.map((l) => [l.name, l.plugins.map((p) => p.type)])).toEqual([
      ['json-single', ['macvlan']],
      ['json-list', ['bridge', 'portmap']],
    ]);
    expect([...lists[1].plugins[1].capabilities]).toEqual(['portMappings']);
  });

  it('a missing conf dir is empty, not an error', async () => {
    const load = await loadConfDir(join(root, 'does-not-exist'));
    expect(load).toEqual({ lists: [], errors: [] });
  });
});

describe('loadConfDir: bad files are reported with file and reason, and skipped', () => {
  const bad: Record<string, { content: unknown; reason: RegExp }> = {
    '01-invalid.conflist': { content: '{"cniVersion": "1.0.0", "name": ', reason: /invalid JSON/ },
    '02-noname.conflist': { content: { cniVersion: '1.0.0', plugins: [{ type: 'bridge' }] }, reason: /missing "name"/ },
    '03-notype.conflist': { content: list('no-type', { plugins: [{ bridge: 'x' }] }), reason: /plugins\[0\].*missing "type"/ },
    '04-slash.conflist': { content: list('slash', { plugins: [{ type: 'sub/bridge' }] }), reason: /invalid plugin type "sub\/bridge"/ },
    '05-dotdot.conf': { content: { cniVersion: '1.0.0', name: 'dotdot', type: '..' }, reason: /invalid plugin type "\.\."/ },
    '06-dotdot2.conflist': { content: list('dotdot2', { plugins: [{ type: '../bin/sh' }] }), reason: /invalid plugin type/ },
    '07-empty.conflist': { content: list('empty', { plugins: [] }), reason: /network "empty" has no plugins/ },
    '08-version.conflist': { content: list('badversion', { cniVersion: 'v1' }), reason: /invalid "cniVersion" "v1"/ },
    '09-caps.conflist': {
      content: list('badcaps', { plugins: [{ type: 'portmap', capabilities: { portMappings: 'yes' } }] }),
      reason: /capability "portMappings" must be true or false/,
    },
    '10-caps2.conflist': {
      content: list('badcaps2', { plugins: [{ type: 'portmap', capabilities: ['portMappings'] }] }),
      reason: /"capabilities" must be an object/,
    },
    '11-notobject.conflist': { content: '[1,2,3]', reason: /must be a JSON object/ },
    '12-badname.conflist': { content: list('bad name!'), reason: /invalid network name/ },
    '13-badversions.conflist': { content: list('badversions', { cniVersions: ['1.0.0', '1.0.f'] }), reason: /invalid "cniVersions" entry "1\.0\.f" at index 1/ },
    '14-badbool.conflist': { content: list('badbool', { disableCheck: 'yes' }), reason: /invalid value "yes" for "disableCheck": must be true or false/ },
    '15-pluginsobj.conflist': { content: list('pluginsobj', { plugins: { type: 'bridge' } }), reason: /"plugins" must be a list/ },
  };

  it('reports every bad file and still loads the good ones', async () => {
    const files: Record<string, unknown> = { '00-good.conflist': list('good-first'), '99-good.conf': { cniVersion: '0.3.1', name: 'good-last', type: 'bridge' } };
    for (const [name, b] of Object.entries(bad)) files[name] = b.content;
    const dir = await confDir(files);
    const load = await loadConfDir(dir);
    expect(load.lists.map((l) => l.name)).toEqual(['good-first', 'good-last']);
    expect(load.errors.map((e) => e.file).sort()).toEqual(Object.keys(bad).map((f) => join(dir, f)).sort());
    for (const [name, b] of Object.entries(bad)) {
      const reason = errorFor(load, dir, name);
      expect(reason, name).toMatch(b.reason);
      // The reason is the reason; the file is reported on its own, not repeated in front of it.
      expect(reason!.startsWith(dir), name).toBe(false);
    }
  });

  it('loadNetworkByName names the skipped files when the network is not there', async () => {
    const dir = await confDir({ 'a.conflist': '{nope' });
    await expect(loadNetworkByName(dir, 'missing')).rejects.toThrow(/no network named "missing".*a\.conflist: invalid JSON/);
  });

  it('confListFromBytes throws ConfigError naming the source', () => {
    const bytes = Buffer.from(JSON.stringify(list('x', { plugins: [{ type: 'a/b' }] })));
    let thrown: unknown;
    try {
      confListFromBytes(bytes, '/etc/somewhere/x.conflist');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).file).toBe('/etc/somewhere/x.conflist');
    expect((thrown as ConfigError).message).toMatch(/^\/etc\/somewhere\/x\.conflist: .*invalid plugin type/);
  });

  it('a duplicate network name is reported against the later file; the first one wins', async () => {
    const dir = await confDir({
      '10-first.conflist': list('dup', { plugins: [{ type: 'bridge' }] }),
      '20-second.conf': { cniVersion: '1.0.0', name: 'dup', type: 'ptp' },
      '30-other.conflist': list('other'),
    });
    const load = await loadConfDir(dir);
    expect(load.lists.map((l) => [l.name, l.plugins[0].type])).toEqual([
      ['dup', 'bridge'],
      ['other', 'bridge'],
    ]);
    expect(load.errors).toHaveLength(1);
    expect(load.errors[0].file).toBe(join(dir, '20-second.conf'));
    expect(load.errors[0].reason).toMatch(/network "dup" is already defined in .*10-first\.conflist/);
  });
});

describe('versions and flags', () => {
  it('cniVersions picks the highest version not newer than ours, cniVersion counting as one more entry', () => {
    const l = confListFromBytes(Buffer.from(JSON.stringify(list('vers', { cniVersion: '0.4.0', cniVersions: ['0.3.1', '1.1.0', '1.0.0', '2.0.0'] }))));
    expect(l.cniVersion).toBe('1.1.0');
    // libcni's CNIVersion is the selected one: it is what the plugins get.
    expect(l.declaredVersion).toBe('1.1.0');
  });

  it('cniVersions alone is enough', () => {
    const bytes = Buffer.from(JSON.stringify({ name: 'only-versions', cniVersions: ['0.3.1', '1.0.0'], plugins: [{ type: 'bridge' }] }));
    const l = confListFromBytes(bytes);
    expect(l.cniVersion).toBe('1.0.0');
  });

  it('cniVersion wins when it is higher than every cniVersions entry', () => {
    const l = confListFromBytes(Buffer.from(JSON.stringify(list('v2', { cniVersion: '1.0.0', cniVersions: ['0.3.1'] }))));
    expect(l.cniVersion).toBe('1.0.0');
  });

  it('a .conf keeps cniVersions and the disable flags', () => {
    const l = confListFromConfBytes(
      Buffer.from(JSON.stringify({ cniVersions: ['0.4.0', '1.1.0'], name: 'c', type: 'ptp', disableCheck: true, disableGC: true })),
    );
    expect(l.cniVersion).toBe('1.1.0');
    expect(l.disableCheck).toBe(true);
    expect(l.disableGC).toBe(true);
  });

  it('parses disableCheck, disableGC and loadOnlyInlinedPlugins, defaulting to false', () => {
    const set = confListFromBytes(Buffer.from(JSON.stringify(list('flags', { disableCheck: true, disableGC: true, loadOnlyInlinedPlugins: true }))));
    expect([set.disableCheck, set.disableGC, set.loadOnlyInlinedPlugins]).toEqual([true, true, true]);
    const unset = confListFromBytes(Buffer.from(JSON.stringify(list('noflags'))));
    expect([unset.disableCheck, unset.disableGC, unset.loadOnlyInlinedPlugins]).toEqual([false, false, false]);
  });

  it('refuses loadOnlyInlinedPlugins without a plugins list', () => {
    expect(() => confListFromBytes(Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name: 'x', loadOnlyInlinedPlugins: true })))).toThrow(
      /loadOnlyInlinedPlugins.*no "plugins"/,
    );
  });

  it('keeps only capabilities set to true', () => {
    const l = confListFromBytes(
      Buffer.from(JSON.stringify(list('caps', { plugins: [{ type: 'portmap', capabilities: { portMappings: true, bandwidth: false, dns: true } }] }))),
    );
    expect([...l.plugins[0].capabilities].sort()).toEqual(['dns', 'portMappings']);
  });
});

describe('sibling-folder plugin aggregation (1.1.0)', () => {
  it('appends <confdir>/<network name>/*.conf and *.json plugins, in name order, after the inlined ones', async () => {
    const dir = await confDir({
      '10-agg.conflist': { cniVersion: '1.1.0', name: 'agg', plugins: [{ type: 'bridge', bridge: 'pn000001' }] },
      'agg/20-b.json': { type: 'portmap', capabilities: { portMappings: true } },
      'agg/10-a.conf': { type: 'tuning', mtu: 1300 },
      'agg/30-ignored.conflist': { type: 'firewall' },
      'agg/40-bad.conf': { type: '../evil' },
    });
    const load = await loadConfDir(dir);
    expect(load.lists).toHaveLength(1);
    const l = load.lists[0];
    expect(l.plugins.map((p) => p.type)).toEqual(['bridge', 'tuning', 'portmap']);
    expect(l.plugins[1].raw).toMatchObject({ mtu: 1300 });
    expect([...l.plugins[2].capabilities]).toEqual(['portMappings']);
    expect(load.errors).toHaveLength(1);
    expect(load.errors[0].file).toBe(join(dir, 'agg', '40-bad.conf'));
    expect(load.errors[0].reason).toMatch(/invalid plugin type/);
  });

  it('a list without "plugins" takes all of its plugins from the sibling folder', async () => {
    const dir = await confDir({
      'net.conflist': { cniVersion: '1.1.0', name: 'nolist' },
      'nolist/a.conf': { type: 'ptp' },
    });
    const load = await loadConfDir(dir);
    expect(load.errors).toEqual([]);
    expect(load.lists[0].plugins.map((p) => p.type)).toEqual(['ptp']);
  });

  it('ignores the sibling folder when loadOnlyInlinedPlugins is true', async () => {
    const dir = await confDir({
      'net.conflist': { cniVersion: '1.1.0', name: 'inlined', loadOnlyInlinedPlugins: true, plugins: [{ type: 'bridge' }] },
      'inlined/a.conf': { type: 'tuning' },
    });
    const load = await loadConfDir(dir);
    expect(load.errors).toEqual([]);
    expect(load.lists[0].plugins.map((p) => p.type)).toEqual(['bridge']);
  });

  it('the cached config of an attachment on an aggregated network still holds the aggregated plugins', async () => {
    // DEL runs from the cached config (Networks.teardown, GC); if the cache holds only the
    // conflist's own bytes, the aggregated plugins are never DELeted and their state leaks.
    const dir = await confDir({});
    const record = join(dir, 'record.log');
    await writeJSON(join(dir, 'net.conflist'), { cniVersion: '1.1.0', name: 'aggcache', plugins: [{ type: 'record-gc', recordFile: record, which: 'inline' }] });
    await mkdir(join(dir, 'aggcache'));
    await writeJSON(join(dir, 'aggcache', 'a.conf'), { type: 'record-gc', recordFile: record, which: 'sibling' });
    const { lists, errors } = await loadConfDir(dir);
    expect(errors).toEqual([]);
    expect(lists[0].plugins).toHaveLength(2);
    const cacheDir = cleanup.dir(await tmpDir('podnet-config-cache-'));
    const cni = new CNIConfig({ path: TEST_PLUGIN_PATH, cacheDir });
    const rt = { containerID: 'agg1', netNS: join(dir, 'no-such-netns'), ifName: 'eth0' };
    await cni.addNetworkList(lists[0], rt);
    const cached = await cni.getNetworkListCachedConfig('aggcache', rt);
    expect(cached?.list.plugins.map((p) => p.raw['which'])).toEqual(['inline', 'sibling']);
    // And so a DEL from the cached config reaches both plugins.
    await cni.delNetworkList(cached!.list, cached!.rt);
    const dels = (await readFile(record, 'utf8')).split('\n').filter((l) => l.startsWith('DEL\t'));
    expect(dels.map((l) => (JSON.parse(l.split('\t')[3]) as { which: string }).which)).toEqual(['sibling', 'inline']);
  });
});

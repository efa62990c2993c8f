// Where plugins are found: the lookup cache podnetd turns on (cachePluginPaths), its
// invalidation, and the atomic writes under the result cache and the sandbox store.
import { afterAll, describe, expect, it } from 'vitest';
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CNIConfig, confListFromBytes } from '../../src/cni/index.js';
import { writeFileAtomic } from '../../src/util/write-atomic.js';
import { pino } from 'pino';
import { defaultConfig } from '../../src/cri/config.js';
import { NetworkManager } from '../../src/engine/network-manager.js';
import { pathExists, PLUGIN_DIRS, tmpDir, waitFor } from '../helpers/env.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function realLoopback(): Promise<string> {
  for (const d of PLUGIN_DIRS) if (await pathExists(join(d, 'loopback'))) return join(d, 'loopback');
  throw new Error('no loopback plugin');
}

describe('plugin path cache', () => {
  it('remembers a lookup until invalidated; a failed exec forgets it', async () => {
    const root = await tmpDir('podnet-paths-');
    dirs.push(root);
    const [a, b] = [join(root, 'a'), join(root, 'b')];
    await Promise.all([a, b].map((d) => mkdir(d)));
    await copyFile(await realLoopback(), join(b, 'lo-copy'));
    const cni = new CNIConfig({ path: [a, b], cacheDir: join(root, 'cache'), cachePluginPaths: true });
    const uncached = new CNIConfig({ path: [a, b], cacheDir: join(root, 'cache') });
    expect(await cni.getPluginPath('lo-copy')).toBe(join(b, 'lo-copy'));

    // A copy that shadows it in an earlier dir: seen at once without the cache, after
    // invalidatePluginPaths() with it.
    await copyFile(await realLoopback(), join(a, 'lo-copy'));
    expect(await uncached.getPluginPath('lo-copy')).toBe(join(a, 'lo-copy'));
    expect(await cni.getPluginPath('lo-copy')).toBe(join(b, 'lo-copy'));
    cni.invalidatePluginPaths();
    expect(await cni.getPluginPath('lo-copy')).toBe(join(a, 'lo-copy'));

    // The cached binary disappears: the exec fails, and the next lookup finds the other copy.
    await rm(join(a, 'lo-copy'));
    const list = confListFromBytes(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'paths', plugins: [{ type: 'lo-copy' }] })));
    await expect(cni.delNetworkList(list, { containerID: 'paths-1', netNS: '', ifName: 'lo' })).rejects.toThrow(/lo-copy/);
    expect(await cni.getPluginPath('lo-copy')).toBe(join(b, 'lo-copy'));
  });
});

describe("podnetd's plugin dir poll", () => {
  it('forgets cached plugin paths when a plugin dir changes', async () => {
    const root = await tmpDir('podnet-paths-');
    dirs.push(root);
    const [a, b] = [join(root, 'a'), join(root, 'b')];
    await mkdir(b);
    await copyFile(await realLoopback(), join(b, 'lo-copy'));
    const cfg = defaultConfig();
    cfg.cni = { ...cfg.cni, binDirs: [a, b], confDir: join(root, 'net.d'), cacheDir: join(root, 'cache') };
    const cni = new CNIConfig({ path: cfg.cni.binDirs, cacheDir: cfg.cni.cacheDir, cachePluginPaths: true });
    const mgr = new NetworkManager(cfg, cni, pino({ level: 'silent' }), 20);
    await mgr.start();
    try {
      expect(await cni.getPluginPath('lo-copy')).toBe(join(b, 'lo-copy'));
      // The earlier dir did not even exist: it appears, with a shadowing copy in it.
      await mkdir(a);
      await copyFile(await realLoopback(), join(a, 'lo-copy'));
      expect(await waitFor(async () => (await cni.getPluginPath('lo-copy')) === join(a, 'lo-copy'), 10_000)).toBe(true);
    } finally {
      mgr.stop();
    }
  });
});

describe('writeFileAtomic', () => {
  it('makes a missing dir, writes 0600, and leaves no temp file', async () => {
    const root = await tmpDir('podnet-atomic-');
    dirs.push(root);
    const file = join(root, 'x', 'y', 'rec.json');
    await writeFileAtomic(file, Buffer.from('one'));
    expect(await readFile(file, 'utf8')).toBe('one');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(root, 'x', 'y'))).mode & 0o777).toBe(0o700);
    await writeFileAtomic(file, Buffer.from('two'), { replacing: true, mode: 0o644 });
    expect(await readFile(file, 'utf8')).toBe('two');
    expect(await readdir(join(root, 'x', 'y'))).toEqual(['rec.json']);
  });

  it('fails with the cause and leaves nothing behind', async () => {
    const root = await tmpDir('podnet-atomic-');
    dirs.push(root);
    await writeFile(join(root, 'not-a-dir'), 'file');
    await expect(writeFileAtomic(join(root, 'not-a-dir', 'rec.json'), Buffer.from('x'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    expect(await readdir(root)).toEqual(['not-a-dir']);
  });
});

// NetnsManager: persistent network namespaces bind-mounted under a dir of our own.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { execa } from 'execa';
import { CommandNamespaceOps, NetnsError, NetnsManager, isNsfsMount, isOwnNetnsName, type NamespaceOps } from '../../src/netns/netns.js';
import { SpawnHelper } from '../../src/spawner/helper.js';
import { Cleanup, nsExec, tmpDir } from '../helpers/env.js';

const cleanup = new Cleanup();
const helper = new SpawnHelper();
let root: string;

beforeAll(async () => {
  root = cleanup.dir(await tmpDir('podnet-netns-'));
});

afterAll(async () => {
  const errors = await cleanup.run();
  expect(errors).toEqual([]);
  expect(await mountedUnder(root)).toEqual([]);
  await helper.close();
});

/** nsfs mount points of this process under a dir, straight from mountinfo. */
async function mountedUnder(prefix: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[f.indexOf('-') + 1] === 'nsfs' && (f[4] ?? '').startsWith(prefix))
    .map((f) => f[4]);
}

// The same behaviour whether the syscalls are made by unshare(1)/umount(8) or by podnet-spawner.
const VARIANTS: Array<[string, () => NamespaceOps]> = [
  ['commands', () => new CommandNamespaceOps()],
  ['helper', () => helper],
];

describe.each(VARIANTS)('namespace ops: %s', (name, ops) => {
  let dir: string;
  let mgr: NetnsManager;

  beforeAll(() => {
    dir = join(root, `netns-${name}`);
    mgr = new NetnsManager(dir, ops());
  });

  async function create(): Promise<string> {
    const p = await mgr.create();
    cleanup.push(() => mgr.remove(p), `netns ${p}`);
    return p;
  }

  describe('create', () => {
    it('makes a cni-<uuid> file in the dir with a new network namespace mounted on it', async () => {
      const p = await create();
      expect(join(p, '..')).toBe(dir);
      expect(isOwnNetnsName(basename(p))).toBe(true);
      expect(await mgr.exists(p)).toBe(true);
      expect(await isNsfsMount(p)).toBe(true);
      expect(await mountedUnder(p)).toEqual([p]);

      const links = await nsExec(p, 'ip', ['-o', 'link']);
      expect(links.exitCode, links.stderr).toBe(0);
      expect(links.stdout.trim().split('\n').map((l) => l.split(': ')[1])).toEqual(['lo']);
      const inside = await nsExec(p, 'readlink', ['/proc/self/ns/net']);
      expect(inside.stdout.trim()).toMatch(/^net:\[\d+\]$/);
      expect(inside.stdout.trim()).not.toBe(await readlink('/proc/self/ns/net'));
    });

    it('every namespace is a new one', async () => {
      const [a, b] = [await create(), await create()];
      expect(a).not.toBe(b);
      const ida = (await nsExec(a, 'readlink', ['/proc/self/ns/net'])).stdout.trim();
      const idb = (await nsExec(b, 'readlink', ['/proc/self/ns/net'])).stdout.trim();
      expect(ida).not.toBe(idb);
    });

    it('with an aborted signal fails and leaves nothing behind', async () => {
      // The mount can win the race with the abort; 20 tries make sure both orders are seen to
      // leave nothing behind.
      const before: string[] = await readdir(dir).catch((): string[] => []);
      const resolved: string[] = [];
      for (let i = 0; i < 20; i++) {
        const p = mgr.newPath();
        cleanup.push(() => mgr.remove(p), `netns ${p}`);
        const err: unknown = await mgr.create(p, AbortSignal.abort()).then(
          (path) => {
            resolved.push(path);
            return undefined;
          },
          (e: unknown) => e,
        );
        if (err !== undefined) expect(err).toBeInstanceOf(NetnsError);
      }
      expect(resolved).toEqual([]);
      expect((await readdir(dir)).sort()).toEqual(before.sort());
      expect((await mountedUnder(dir)).sort()).toEqual((await mgr.list()).filter((p) => before.includes(basename(p))).sort());
    });

    it('at a path chosen beforehand with newPath()', async () => {
      const p = mgr.newPath();
      expect(isOwnNetnsName(basename(p))).toBe(true);
      expect(await mgr.exists(p)).toBe(false);
      cleanup.push(() => mgr.remove(p), `netns ${p}`);
      expect(await mgr.create(p)).toBe(p);
      expect(await isNsfsMount(p)).toBe(true);
      // The same path twice is an error, not a second mount over the first.
      await expect(mgr.create(p)).rejects.toThrow();
      expect(await mountedUnder(p)).toEqual([p]);
    });

    it('refuses a path that is not ours', async () => {
      await expect(mgr.create(join(root, `cni-${randomUUID()}`))).rejects.toBeInstanceOf(NetnsError);
      await expect(mgr.create(join(dir, 'foreign-name'))).rejects.toBeInstanceOf(NetnsError);
      expect(await readdir(root)).not.toContain('foreign-name');
    });
  });

  describe('remove', () => {
    it('unmounts and deletes; a second remove is fine', async () => {
      const p = await create();
      await mgr.remove(p);
      expect(await mgr.exists(p)).toBe(false);
      expect(await isNsfsMount(p)).toBe(false);
      expect(await mountedUnder(p)).toEqual([]);
      await mgr.remove(p);
      expect((await nsExec(p, 'true')).exitCode).not.toBe(0);
    });

    it('works while a process still holds the namespace', async () => {
      const p = await create();
      const holder = execa('nsenter', [`--net=${p}`, 'sleep', '30'], { reject: false });
      try {
        // wait until the holder is really inside
        for (let i = 0; i < 100 && !(await readlink(`/proc/${holder.pid}/exe`).catch(() => '')).endsWith('sleep'); i++) {
          await new Promise((r) => setTimeout(r, 20));
        }
        await mgr.remove(p);
        expect(await mgr.exists(p)).toBe(false);
        expect(await mountedUnder(p)).toEqual([]);
      } finally {
        holder.kill('SIGKILL');
        await holder;
      }
    });

    it('refuses paths outside the dir or not named cni-<uuid>, and touches nothing', async () => {
      const own = await create();
      const foreign = join(dir, 'foreign');
      await writeFile(foreign, 'not ours');
      const refused = [
        foreign,
        join(dir, 'cni-not-a-uuid'),
        join(dir, `cni-${randomUUID().toUpperCase()}`),
        join(root, `cni-${randomUUID()}`),
        join(dir, 'sub', basename(own)),
        join(dir, '..', basename(own)),
        `/tmp/${basename(own)}`,
        '/',
        dir,
      ];
      for (const p of refused) {
        await expect(mgr.remove(p), p).rejects.toBeInstanceOf(NetnsError);
      }
      expect(await readFile(foreign, 'utf8')).toBe('not ours');
      expect(await isNsfsMount(own)).toBe(true);
    });
  });
});

describe('list', () => {
  it('shows only our namespaces', async () => {
    const other = new NetnsManager(join(root, 'list'));
    const a = await other.create();
    cleanup.push(() => other.remove(a), `netns ${a}`);
    const b = await other.create();
    cleanup.push(() => other.remove(b), `netns ${b}`);
    await writeFile(join(other.dir, 'foreign'), '');
    await writeFile(join(other.dir, 'cni-bogus'), '');
    expect(await other.list()).toEqual([a, b].sort());
    await other.remove(a);
    expect(await other.list()).toEqual([b]);
  });

  it('of a missing dir is empty', async () => {
    expect(await new NetnsManager(join(root, 'nope')).list()).toEqual([]);
  });
});

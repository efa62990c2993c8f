// The two Spawners (child_process in-process, and the podnet-spawner helper) behave the same, and
// the helper survives what can go wrong with it: bad input, runaway output, aborts, its own death.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { HELPER_BINARY, SpawnHelper } from '../../src/spawner/helper.js';
import { InlineSpawner, OutputLimitError, SpawnError, type Spawner } from '../../src/spawner/spawner.js';
import { FAULT_PLUGIN_DIR, pathExists, pidAlive, PLUGIN_DIRS, tmpDir, waitFor } from '../helpers/env.js';
import { rm } from 'node:fs/promises';

const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
const helper = new SpawnHelper();
const dirs: string[] = [];

afterAll(async () => {
  await helper.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function pluginPath(type: string): Promise<string> {
  for (const d of PLUGIN_DIRS) if (await pathExists(join(d, type))) return join(d, type);
  throw new Error(`no ${type} plugin`);
}

/** Starts the hang fault plugin; resolves once it wrote its own and its child's pid. */
async function startHang(spawner: Spawner, signal?: AbortSignal): Promise<{ run: Promise<unknown>; pids: number[] }> {
  const dir = await tmpDir('podnet-spawn-');
  dirs.push(dir);
  const pidFile = join(dir, 'pids');
  const run = spawner.spawn({ path: join(FAULT_PLUGIN_DIR, 'hang'), env: { ...ENV, HANG_PIDFILE: pidFile }, ...(signal ? { signal } : {}) }).catch((e: unknown) => e);
  expect(await waitFor(() => pathExists(pidFile), 10_000)).toBe(true);
  return { run, pids: (await readFile(pidFile, 'utf8')).trim().split(' ').map(Number) };
}

async function allDead(pids: number[]): Promise<boolean> {
  return waitFor(async () => (await Promise.all(pids.map(pidAlive))).every((alive) => !alive), 5000);
}

const SPAWNERS: Array<[string, Spawner]> = [
  ['inline', new InlineSpawner()],
  ['helper', helper],
];

describe.each(SPAWNERS)('%s spawner', (_name, spawner) => {
  it('runs a real plugin with the given environment and stdin', async () => {
    const r = await spawner.spawn({
      path: await pluginPath('loopback'),
      env: { ...ENV, CNI_COMMAND: 'VERSION' },
      stdin: Buffer.from('{"cniVersion":"1.0.0"}'),
    });
    expect(r.exitCode).toBe(0);
    expect(r.signal).toBeNull();
    expect(JSON.parse(r.stdout.toString()) as unknown).toMatchObject({ cniVersion: '1.0.0', supportedVersions: expect.arrayContaining(['0.3.1', '1.0.0']) as unknown });
  });

  it('passes only the environment it is given, and argv', async () => {
    const r = await spawner.spawn({ path: '/bin/sh', args: ['-c', 'echo "$0|$1|$PODNET_T|$HOME"', 'x', 'arg one'], env: { ...ENV, PODNET_T: 'a=b c' } });
    expect(r.stdout.toString()).toBe('x|arg one|a=b c|\n');
  });

  it('moves megabytes through stdin and stdout, and keeps stderr apart', async () => {
    const input = Buffer.alloc(3 * 1024 * 1024, 'ab');
    const r = await spawner.spawn({ path: '/bin/sh', args: ['-c', 'cat; echo oops >&2; exit 3'], env: ENV, stdin: input });
    expect(r.exitCode).toBe(3);
    expect(r.stdout.equals(input)).toBe(true);
    expect(r.stderr.toString()).toBe('oops\n');
  });

  it('reports a process killed by a signal', async () => {
    const r = await spawner.spawn({ path: '/bin/sh', args: ['-c', 'kill -TERM $$'], env: ENV });
    expect(r).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
  });

  it('fails to start a missing binary with ENOENT', async () => {
    const err = await spawner.spawn({ path: '/nonexistent/podnet-plugin', env: ENV }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpawnError);
    expect(err).toMatchObject({ code: 'ENOENT' });
  });

  it('kills a process that writes past maxOutput', async () => {
    const err = await spawner.spawn({ path: '/bin/sh', args: ['-c', 'yes podnet'], env: ENV, maxOutput: 64 * 1024 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutputLimitError);
  });

  it('on abort kills the whole process group, then settles', async () => {
    const ac = new AbortController();
    const { run, pids } = await startHang(spawner, ac.signal);
    ac.abort();
    expect(await run).toMatchObject({ signal: 'SIGKILL' });
    expect(await allDead(pids)).toBe(true);
  });
});

describe('helper', () => {
  it('passes multi-byte arguments and environment values byte for byte', async () => {
    const word = 'pöd-网络-🚀';
    const r = await helper.spawn({ path: '/bin/sh', args: ['-c', 'printf "%s|%s" "$1" "$WORD"', 'sh', word], env: { ...ENV, WORD: `${word}=x` } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString('utf8')).toBe(`${word}|${word}=x`);
  });

  it('refuses NUL bytes in what would become C strings, and keeps working', async () => {
    await expect(helper.spawn({ path: '/bin/true', env: { ...ENV, BAD: 'a\0b' } })).rejects.toThrow(/NUL/);
    await expect(helper.spawn({ path: '/bin/true', args: ['a\0'], env: ENV })).rejects.toThrow(/NUL/);
    await expect(helper.spawn({ path: '/bin/true', env: { 'A=B': 'c' } })).rejects.toThrow(/"="/);
    expect((await helper.spawn({ path: '/bin/true', env: ENV })).exitCode).toBe(0);
  });

  it('runs many plugins at once', async () => {
    const loopback = await pluginPath('loopback');
    const rs = await Promise.all(
      Array.from({ length: 64 }, (_, i) => helper.spawn({ path: loopback, env: { ...ENV, CNI_COMMAND: 'VERSION' }, stdin: Buffer.from(`{"cniVersion":"0.${(i % 4) + 1}.0"}`) })),
    );
    expect(rs.every((r) => r.exitCode === 0 && r.stdout.includes('supportedVersions'))).toBe(true);
  });

  it('when the helper dies, calls in flight fail and their plugins are killed; the next call starts a new helper', async () => {
    const { run, pids } = await startHang(helper);
    const first = helper.pid!;
    process.kill(first, 'SIGKILL');
    const err = await run;
    expect(err).toBeInstanceOf(SpawnError);
    expect((err as Error).message).toContain('killed by SIGKILL');
    expect(await allDead(pids)).toBe(true);
    expect((await helper.spawn({ path: '/bin/true', env: ENV })).exitCode).toBe(0);
    expect(helper.pid).not.toBe(first);
  });

  it('close() ends the helper; a call in flight fails and its plugin is killed', async () => {
    const own = new SpawnHelper(HELPER_BINARY);
    const { run, pids } = await startHang(own);
    const helperPid = own.pid!;
    await own.close();
    expect(await run).toBeInstanceOf(SpawnError);
    expect(await pidAlive(helperPid)).toBe(false);
    expect(await allDead(pids)).toBe(true);
  });

  it('when podnetd dies (EOF), the helper exits at once and leaves running plugins to finish', async () => {
    // The helper run raw, as a killed daemon leaves it: its stdin closes with a plugin running.
    const { spawn } = await import('node:child_process');
    const dir = await tmpDir('podnet-spawn-');
    dirs.push(dir);
    const done = join(dir, 'done');
    const raw = spawn(HELPER_BINARY, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    const script = `sleep 0.3; echo ok > ${done}`;
    const strs = ['/bin/sh', '/bin/sh', '-c', script];
    const parts: Buffer[] = [];
    const u32 = (v: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(v);
      return b;
    };
    const str = (x: string): Buffer => Buffer.concat([u32(Buffer.byteLength(x)), Buffer.from(x)]);
    parts.push(u32(1 << 20), str(strs[0]), u32(3), str(strs[1]), str(strs[2]), str(strs[3]), u32(1), str('PATH=/usr/bin:/bin'), u32(0));
    const body = Buffer.concat(parts);
    const head = Buffer.alloc(9);
    head.writeUInt32LE(5 + body.length, 0);
    head.writeUInt32LE(7, 4);
    head.writeUInt8(1, 8);
    const started = new Promise<void>((resolve) => raw.stdout.once('data', () => resolve()));
    raw.stdin.write(Buffer.concat([head, body]));
    await started;
    const exited = new Promise<number | null>((resolve) => raw.once('exit', (code) => resolve(code)));
    raw.stdin.end();
    expect(await exited).toBe(0);
    expect(await pathExists(done)).toBe(false);
    expect(await waitFor(() => pathExists(done), 5000)).toBe(true);
  });

  it('a missing helper binary fails the call with the cause', async () => {
    const none = new SpawnHelper('/nonexistent/podnet-spawner');
    await expect(none.spawn({ path: '/bin/true', env: ENV })).rejects.toThrow(/podnet-spawner.*ENOENT/);
  });
});

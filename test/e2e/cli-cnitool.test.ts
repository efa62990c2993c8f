// `podnet add|del|check|gc|status` answer as Go's cnitool does: its environment, its CNI_ARGS
// parser, libcni's config lookup, what plugins write to stderr. The plugins are the recording
// record-env and the fault plugins of test/plugins, copied into a bin dir of the test's own; none
// touches the namespace argument, so no namespace is made.
import { afterEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { chmod, copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCniArgs } from '../../src/cmd/cnitool.js';
import { Cleanup, FAULT_PLUGIN_DIR, randomHex, tmpDir } from '../helpers/env.js';

const PODNET = join(import.meta.dirname, '../../bin/podnet');

interface Setup {
  root: string;
  confDir: string;
  bin: string;
  rec: string;
  /** cnitool's arguments after the verb and network: the netns path and our cache dir. */
  tail: string[];
  /** The environment cnitool reads, and nothing else of ours (PATH for node). */
  env: (extra?: Record<string, string>) => Record<string, string>;
}

describe('podnet as cnitool', () => {
  const cleanup = new Cleanup();
  afterEach(async () => {
    expect(await cleanup.run()).toEqual([]);
  });

  async function setup(files: Record<string, unknown> = {}): Promise<Setup> {
    const root = cleanup.dir(await tmpDir('podnet-cnitool-'));
    const confDir = join(root, 'net.d');
    const bin = join(root, 'bin');
    await mkdir(confDir);
    await mkdir(bin);
    for (const p of ['record-env', 'fail-json']) {
      await copyFile(join(FAULT_PLUGIN_DIR, p), join(bin, p));
      await chmod(join(bin, p), 0o755);
    }
    const rec = join(bin, 'record-env.rec');
    await mkdir(rec);
    for (const [name, content] of Object.entries(files)) await writeFile(join(confDir, name), typeof content === 'string' ? content : JSON.stringify(content));
    return {
      root,
      confDir,
      bin,
      rec,
      tail: [join(root, 'ns-never-made'), '--cache-dir', join(root, 'cache')],
      env: (extra = {}) => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', NETCONFPATH: confDir, CNI_PATH: bin, ...extra }),
    };
  }

  const run = (s: Setup, args: string[], env: Record<string, string>) => execa(PODNET, args, { env, extendEnv: false, reject: false });
  const list = (name: string, plugins: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> => ({ cniVersion: '1.0.0', name, plugins, ...extra });

  async function recordedEnv(s: Setup, n: number): Promise<Map<string, string>> {
    const lines = (await readFile(join(s.rec, `${n}.env`), 'utf8')).split('\n').filter(Boolean);
    return new Map(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  }

  it('CNI_PATH unset is cnitool\'s error, not a default plugin path', async () => {
    const s = await setup({ '10-net.conflist': list('net', [{ type: 'record-env' }]) });
    const env = s.env();
    delete env['CNI_PATH'];
    const r = await run(s, ['add', 'net', ...s.tail], env);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^podnet: plugin type="record-env" failed \(add\): no paths provided/);
    expect(await readdir(s.rec)).toEqual([]);
  });

  it('prints what a successful plugin writes to stderr, and the result on stdout', async () => {
    const s = await setup({ '10-net.conflist': list('net', [{ type: 'record-env', stderr: 'warning: from the plugin' }]) });
    const add = await run(s, ['add', 'net', ...s.tail], s.env());
    expect(add.exitCode, add.stderr).toBe(0);
    expect(add.stderr).toBe('warning: from the plugin');
    expect(JSON.parse(add.stdout)).toEqual({ cniVersion: '1.0.0' });
    const del = await run(s, ['del', 'net', ...s.tail], s.env());
    expect([del.exitCode, del.stderr]).toEqual([0, 'warning: from the plugin']);
  });

  it('CNI_ARGS is parsed as cnitool parses it: every pair KEY=VALUE, nothing empty', async () => {
    const s = await setup({ '10-net.conflist': list('net', [{ type: 'record-env' }]) });
    for (const bad of ['A=1;', 'A=1;;B=2', ';A=1', '=1', 'A=', 'A=1=2', 'A']) {
      const r = await run(s, ['add', 'net', ...s.tail], s.env({ CNI_ARGS: bad }));
      expect(r.exitCode, bad).toBe(1);
      expect(r.stderr, bad).toContain('invalid CNI_ARGS pair');
    }
    expect(await readdir(s.rec)).toEqual([]);
    const ok = await run(s, ['add', 'net', ...s.tail], s.env({ CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web-0' }));
    expect(ok.exitCode, ok.stderr).toBe(0);
    const env = await recordedEnv(s, 1);
    expect(env.get('CNI_ARGS')).toBe('IgnoreUnknown=1;K8S_POD_NAME=web-0');
    expect(env.get('CNI_PATH')).toBe(s.bin);
    await run(s, ['del', 'net', ...s.tail], s.env());
  });

  it('parseCniArgs names the pair it refuses', () => {
    expect(parseCniArgs('')).toEqual([]);
    expect(parseCniArgs('A=1;B=2')).toEqual([['A', '1'], ['B', '2']]);
    expect(() => parseCniArgs('A=1;')).toThrow('invalid CNI_ARGS pair ""');
    expect(() => parseCniArgs('A=1=2')).toThrow('invalid CNI_ARGS pair "A=1=2"');
    expect(() => parseCniArgs('=x')).toThrow('invalid CNI_ARGS pair "=x"');
  });

  it('finds a .conflist before a .conf of the same name; a broken .conflist before the match fails the command', async () => {
    const s = await setup({
      '00-shared.conf': { cniVersion: '1.0.0', name: 'shared', type: 'fail-json' },
      '50-shared.conflist': list('shared', [{ type: 'record-env' }]),
    });
    const add = await run(s, ['add', 'shared', ...s.tail], s.env());
    expect(add.exitCode, add.stderr).toBe(0);
    expect(await readdir(s.rec)).toContain('1.env');
    await run(s, ['del', 'shared', ...s.tail], s.env());
    await writeFile(join(s.confDir, '10-broken.conflist'), '{"name": ');
    const broken = await run(s, ['add', 'shared', ...s.tail], s.env());
    expect(broken.exitCode).toBe(1);
    expect(broken.stderr).toContain(`${join(s.confDir, '10-broken.conflist')}: invalid JSON`);
    // validate (the daemon's view) reports the broken file and still loads the rest.
    const v = await run(s, ['validate', '--conf-dir', s.confDir, '--cni-bin-dir', s.bin, '--json'], s.env());
    const rows = JSON.parse(v.stdout) as Array<{ file: string; network: string; verdict: string }>;
    expect(rows.find((r) => r.file.endsWith('10-broken.conflist'))!.verdict).toMatch(/^error: invalid JSON/);
    expect(rows.find((r) => r.file.endsWith('00-shared.conf'))!.network).toBe('shared');
  });

  it('a plugin\'s CNI error is libcni\'s text: the list prefix, then "msg; details"', async () => {
    const name = `err-${randomHex(4)}`;
    const s = await setup({ '10-net.conflist': list(name, [{ type: 'fail-json' }]) });
    const add = await run(s, ['add', name, ...s.tail], s.env());
    expect(add.exitCode).toBe(1);
    expect(add.stderr).toBe(`podnet: plugin type="fail-json" failed (add): try later; injected (network "${name}", code 11)`);
    const del = await run(s, ['del', name, ...s.tail], s.env());
    expect(del.stderr).toBe(`podnet: plugin type="fail-json" failed (delete): try later; injected (network "${name}", code 11)`);
  });
});

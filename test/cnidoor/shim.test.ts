// podnet-cni, the real binary, against the real door with a recording backend: stdin and CNI_*
// environment in, stdout and exit status out, as a runtime execs it.
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { CNIDoorError } from '../../src/cnidoor/errors.js';
import type { AttachmentCall } from '../../src/cnidoor/backend.js';
import { parseResult } from '../../src/cni/result.js';
import { REPO_ROOT } from '../e2e/harness.js';
import { Cleanup, tmpDir } from '../helpers/env.js';
import { cniEnv, startDoor, type Door } from './door.js';

const SHIM = join(REPO_ROOT, 'dist', 'libexec', 'podnet-cni');
const built = existsSync(SHIM);
if (!built) console.warn(`skipping the podnet-cni tests: ${SHIM} is missing (make build)`);
const cleanup = new Cleanup();
afterEach(async () => {
  expect(await cleanup.run()).toEqual([]);
});

interface ShimRun {
  exitCode: number;
  stdout: string;
  json: Record<string, unknown> | undefined;
}

/** Runs the shim with exactly this environment (no PATH, no HOME: a runtime gives little more). */
async function shim(env: Record<string, string>, stdin: unknown): Promise<ShimRun> {
  const r = await execa(SHIM, [], { env, extendEnv: false, input: typeof stdin === 'string' ? stdin : JSON.stringify(stdin), reject: false, timeout: 30_000 });
  const stdout = String(r.stdout);
  return { exitCode: r.exitCode ?? 128, stdout, json: stdout ? (JSON.parse(stdout) as Record<string, unknown>) : undefined };
}

const conf = (d: Door | { socket: string }, extra: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name: 'podnet', type: 'podnet-cni', socket: d.socket, ...extra });

describe.runIf(built)('podnet-cni', () => {
  it('answers VERSION itself, with no daemon', async () => {
    const r = await shim({ CNI_COMMAND: 'VERSION' }, { cniVersion: '0.4.0' });
    expect(r.exitCode).toBe(0);
    expect(r.json).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    // An empty stdin is answered too, in the newest version.
    expect((await shim({ CNI_COMMAND: 'VERSION' }, '')).json).toMatchObject({ cniVersion: '1.1.0' });
  });

  it('ADD forwards stdin and CNI_* and prints the result in the stdin version', async () => {
    const d = await startDoor(cleanup);
    for (const v of ['1.1.0', '1.0.0', '0.4.0', '0.3.1', '0.3.0']) {
      const stdin = conf(d, { cniVersion: v });
      const r = await shim(cniEnv('ADD'), stdin);
      expect(r.exitCode, r.stdout).toBe(0);
      expect(r.json!['cniVersion']).toBe(v);
      // A valid result of exactly that version's shape.
      const parsed = parseResult(r.json, v) as { ips?: { address: string; version?: string }[] };
      expect(parsed.ips![0].address).toBe('10.200.0.5/24');
      if (v.startsWith('0.')) expect(parsed.ips![0].version).toBe('4');
      const call = d.backend.calls.at(-1)!.call as AttachmentCall;
      expect(call.config.toString()).toBe(JSON.stringify(stdin));
      expect(call).toMatchObject({ command: 'ADD', containerID: 'c0ffee00aa', ifName: 'eth0', netns: '/var/run/netns/cni-1234', cniVersion: v, pod: { namespace: 'default', name: 'web-0' } });
    }
  });

  it('DEL/CHECK succeed silently; a failed DEL is the daemon error on stdout and exit 1 (never swallowed)', async () => {
    const d = await startDoor(cleanup);
    for (const cmd of ['DEL', 'CHECK']) {
      const r = await shim(cniEnv(cmd), conf(d));
      expect([r.exitCode, r.stdout]).toEqual([0, '']);
    }
    d.backend.hooks.set('del', () => Promise.reject(new CNIDoorError(11, 'podnetd could not release 10.200.0.5', 'host-local: disk full')));
    const r = await shim(cniEnv('DEL', { CNI_NETNS: '' }), conf(d));
    expect(r.exitCode).toBe(1);
    expect(r.json).toEqual({ cniVersion: '1.0.0', code: 11, msg: 'podnetd could not release 10.200.0.5', details: 'host-local: disk full' });
  });

  it('GC and STATUS of a 1.1.0 config go through; a bad request is the door’s CNI error', async () => {
    const d = await startDoor(cleanup);
    const gc = await shim({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, conf(d, { cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'abc', ifname: 'eth0' }] }));
    expect([gc.exitCode, gc.stdout]).toEqual([0, '']);
    expect(d.backend.calls[0]).toMatchObject({ method: 'gc', call: { validAttachments: [{ containerID: 'abc', ifName: 'eth0' }] } });
    expect((await shim({ CNI_COMMAND: 'STATUS' }, conf(d, { cniVersion: '1.1.0' }))).exitCode).toBe(0);
    const bad = await shim(cniEnv('ADD', { CNI_IFNAME: 'way-too-long-ifname' }), conf(d));
    expect(bad.exitCode).toBe(1);
    expect(bad.json).toMatchObject({ code: 4, msg: expect.stringMatching(/CNI_IFNAME/) as unknown });
    expect(d.backend.calls).toHaveLength(2);
  });

  it('its own checks: no CNI_COMMAND (4), stdin that is not a JSON object (6), no cniVersion or a relative socket (7)', async () => {
    expect((await shim({}, conf({ socket: '/nonexistent.sock' }))).json).toMatchObject({ code: 4 });
    expect((await shim(cniEnv('ADD'), '{"cniVersion": "1.0.0",')).json).toMatchObject({ code: 6 });
    expect((await shim(cniEnv('ADD'), '[1]')).json).toMatchObject({ code: 6 });
    expect((await shim(cniEnv('DEL'), { name: 'x' })).json).toMatchObject({ code: 7, msg: expect.stringMatching(/has no cniVersion/) as unknown });
    const rel = await shim(cniEnv('DEL'), conf({ socket: 'run/x.sock' }));
    expect([rel.exitCode, rel.json!['code']]).toEqual([1, 7]);
  });

  it('hostile stdin never crashes it: every answer is exit 0/1 with a CNI error or nothing', async () => {
    const dir = cleanup.dir(await tmpDir('podnet-shim-'));
    const socket = join(dir, 'none.sock');
    const inputs = [
      `{"cniVersion": "${'9'.repeat(100)}", "socket": "/nonexistent"}`,
      '{',
      '{"cniVersion": "1.0.0", "socket": "' + socket + '"',
      '{"cniVersion": "1.0.0\\", "socket": 1}',
      `{"cniVersion": "1.0.0", "x": ${'['.repeat(100_000)}}`,
      `{"cniVersion": "1.0.0", "socket": "${'a'.repeat(500)}"}`,
      '{"cniVersion": "1.0.0", "socket": "/x\\u0000y"}',
      '{"cniVersion": "1.0.0", "readyTimeoutMs": 1e99}',
      `{"cniVersion": "${'9'.repeat(100)}", "socket": "${socket}"}`,
      'x'.repeat(2 << 20),
      '\u0000\u0001',
    ];
    for (const input of inputs) {
      // DEL and CHECK never wait for readiness, so a missing daemon answers at once.
      for (const cmd of ['DEL', 'CHECK']) {
        const r = await execa(SHIM, [], { env: cniEnv(cmd), extendEnv: false, input, reject: false, timeout: 30_000 });
        expect([0, 1], input.slice(0, 80)).toContain(r.exitCode);
        const out = JSON.parse(String(r.stdout)) as { code: number; msg: string };
        expect(typeof out.code).toBe('number');
        expect(out.msg.length).toBeGreaterThan(0);
      }
    }
  });

  it('daemon down: DEL is code 11 at once; ADD waits for readiness up to its bound, then 11', async () => {
    const dir = cleanup.dir(await tmpDir('podnet-shim-'));
    const gone = { socket: join(dir, 'none.sock') };
    const del = await shim(cniEnv('DEL'), conf(gone));
    expect(del.exitCode).toBe(1);
    expect(del.json).toMatchObject({ cniVersion: '1.0.0', code: 11, msg: `cannot reach podnetd at ${gone.socket}` });
    const add = await shim(cniEnv('ADD'), conf(gone, { readyTimeoutMs: 300 }));
    expect(add.exitCode).toBe(1);
    expect(add.json).toMatchObject({ code: 11, msg: `podnetd at ${gone.socket} was not ready within 300 ms` });
    // Without "socket" the default path is used.
    const dflt = await shim(cniEnv('DEL'), { cniVersion: '1.0.0', name: 'podnet', type: 'podnet-cni' });
    expect(String(dflt.json!['msg'])).toContain('/run/podnet/cni/podnet-cni.sock');
  });

  it('ADD against a daemon that is still recovering waits (on the daemon side) until it is ready', async () => {
    const d = await startDoor(cleanup);
    d.backend.isReady = false;
    // Ready once the shim has polled a few times, whatever the clock says.
    const poll = setInterval(() => {
      if (d.backend.readyCalls >= 3) d.backend.isReady = true;
    }, 10);
    cleanup.push(() => clearInterval(poll));
    const r = await shim(cniEnv('ADD'), conf(d));
    expect(r.exitCode, r.stdout).toBe(0);
    expect(d.backend.readyCalls).toBeGreaterThanOrEqual(3);
    expect(d.backend.calls.map((c) => c.method)).toEqual(['add']);
    // Never ready within the bound: code 11 and the backend never asked to ADD.
    d.backend.isReady = false;
    clearInterval(poll);
    const late = await shim(cniEnv('ADD', { CNI_CONTAINERID: 'other' }), conf(d, { readyTimeoutMs: 250 }));
    expect(late.json).toMatchObject({ code: 11, details: expect.stringMatching(/readyz/) as unknown });
    expect(d.backend.calls).toHaveLength(1);
  });

  it('ADD is one request: no /readyz probe first; it carries its bound in Podnet-Ready-Timeout-Ms, other verbs none', async () => {
    const dir = cleanup.dir(await tmpDir('podnet-shim-'));
    const socket = join(dir, 'recording.sock');
    const seen: Array<{ method: string; url: string; wait: string | string[] | undefined }> = [];
    // Records what the shim sent and answers as the door would: a Result for ADD, 200 for DEL.
    const srv = createServer((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', wait: req.headers['podnet-ready-timeout-ms'] });
      req.resume();
      req.on('end', () => res.writeHead(200, { 'Content-Type': 'application/json' }).end(req.url === '/cni' && seen.length === 1 ? '{"Result":{"cniVersion":"1.0.0"}}' : ''));
    });
    await new Promise<void>((r) => srv.listen(socket, r));
    cleanup.push(() => new Promise<void>((r) => srv.close(() => r())));
    const add = await shim(cniEnv('ADD'), conf({ socket }, { readyTimeoutMs: 1234 }));
    expect(add.exitCode, add.stdout).toBe(0);
    expect(add.json).toEqual({ cniVersion: '1.0.0' });
    const del = await shim(cniEnv('DEL'), conf({ socket }));
    expect(del.exitCode, del.stdout).toBe(0);
    expect(seen).toEqual([
      { method: 'POST', url: '/cni', wait: '1234' },
      { method: 'POST', url: '/cni', wait: undefined },
    ]);
  });

  it('a daemon whose socket appears while an ADD waits gets that ADD', async () => {
    const dir = cleanup.dir(await tmpDir('podnet-shim-'));
    const socket = join(dir, 'late.sock');
    const srv = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"Result":{"cniVersion":"1.0.0"}}'));
    });
    cleanup.push(() => new Promise<void>((r) => (srv.listening ? srv.close(() => r()) : r())));
    const pending = shim(cniEnv('ADD'), conf({ socket }, { readyTimeoutMs: 20_000 }));
    // The shim is dialling a socket that does not exist yet; it is served once the shim has tried.
    await new Promise((r) => setTimeout(r, 300));
    await new Promise<void>((r) => srv.listen(socket, r));
    const add = await pending;
    expect(add.exitCode, add.stdout).toBe(0);
    expect(add.json).toEqual({ cniVersion: '1.0.0' });
  });

  it('an answer that is not the protocol (a proxy, another server) is code 999 with what it said', async () => {
    const dir = cleanup.dir(await tmpDir('podnet-shim-'));
    const socket = join(dir, 'other.sock');
    const srv = createServer((_req, res) => res.writeHead(502, { 'Content-Type': 'text/plain' }).end('bad gateway'));
    await new Promise<void>((r) => srv.listen(socket, r));
    cleanup.push(() => new Promise<void>((r) => srv.close(() => r())));
    const r = await shim(cniEnv('DEL'), conf({ socket }));
    expect(r.exitCode).toBe(1);
    expect(r.json).toEqual({ cniVersion: '1.0.0', code: 999, msg: 'podnetd answered HTTP 502', details: 'bad gateway' });
  });
});

// The CNI door's protocol (Multus' thick-plugin HTTP API) against a recording backend.
import { connect } from 'node:net';
import { lstat, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CNIDoorError } from '../../src/cnidoor/errors.js';
import { CNIDoorServer } from '../../src/cnidoor/server.js';
import { MAX_BODY_BYTES } from '../../src/cnidoor/request.js';
import type { AttachmentCall, DelegateCall } from '../../src/cnidoor/backend.js';
import { Cleanup, sh, tmpDir } from '../helpers/env.js';
import { pino } from 'pino';
import { b64, cniEnv, http, shimStdin, startDoor, type Door } from './door.js';
import { RecordingBackend } from './recording-backend.js';

const cleanup = new Cleanup();
afterEach(async () => {
  expect(await cleanup.run()).toEqual([]);
});

function cni(d: Door, env: Record<string, string>, config: unknown, extra: Record<string, unknown> = {}) {
  return http(d.socket, 'POST', '/cni', { env, config: b64(config), ...extra });
}

interface CNIErr {
  code: number;
  msg: string;
  details?: string;
  cniVersion: string;
}
const errOf = (body: string): CNIErr => JSON.parse(body) as CNIErr;

describe('socket', () => {
  it('makes its dir 0700 and the socket 0600', async () => {
    const d = await startDoor(cleanup);
    expect((await lstat(join(d.dir, 'cni'))).mode & 0o777).toBe(0o700);
    const st = await lstat(d.socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it('replaces a stale socket, refuses a live one and a file that is not a socket', async () => {
    const dir = cleanup.dir(await tmpDir('podnet-door-'));
    const log = pino({ level: 'silent' });
    // A socket file whose server died without unlinking it (kill -9).
    const stale = join(dir, 'stale.sock');
    await sh(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect((await lstat(stale)).isSocket()).toBe(true);
    const s1 = new CNIDoorServer({ backend: new RecordingBackend(), log });
    await s1.listen(stale);
    cleanup.push(() => s1.close());
    expect((await http(stale, 'GET', '/healthz')).status).toBe(200);

    const s2 = new CNIDoorServer({ backend: new RecordingBackend(), log });
    await expect(s2.listen(stale)).rejects.toThrow(/already serving/);

    const file = join(dir, 'file.sock');
    await writeFile(file, 'x');
    const s3 = new CNIDoorServer({ backend: new RecordingBackend(), log });
    await expect(s3.listen(file)).rejects.toThrow(/not a socket/);
  });

  it('removes its socket on close', async () => {
    const c = new Cleanup();
    const d = await startDoor(c);
    await d.server.close();
    await expect(lstat(d.socket)).rejects.toThrow(/ENOENT/);
    await c.run();
  });
});

describe('probes and routes', () => {
  it('/healthz answers GET and POST (multus-shim POSTs "null")', async () => {
    const d = await startDoor(cleanup);
    expect((await http(d.socket, 'GET', '/healthz')).status).toBe(200);
    expect((await http(d.socket, 'POST', '/healthz', 'null')).status).toBe(200);
    expect((await http(d.socket, 'PUT', '/healthz')).status).toBe(405);
  });

  it('/readyz follows the backend, and answers 500 once shutdown begins', async () => {
    const d = await startDoor(cleanup);
    d.backend.isReady = false;
    expect((await http(d.socket, 'GET', '/readyz')).status).toBe(500);
    d.backend.isReady = true;
    expect((await http(d.socket, 'POST', '/readyz', 'null')).status).toBe(200);
    d.server.beginShutdown();
    expect((await http(d.socket, 'GET', '/readyz')).status).toBe(500);
    expect((await http(d.socket, 'GET', '/healthz')).status).toBe(200);
    const r = await cni(d, cniEnv('ADD'), shimStdin());
    expect(r.status).toBe(400);
    expect(errOf(r.body).code).toBe(11);
    expect(d.backend.calls).toEqual([]);
  });

  it('Podnet-Ready-Timeout-Ms: an ADD waits that long for readiness, then code 11; a malformed bound is code 4; other verbs do not wait', async () => {
    const d = await startDoor(cleanup);
    d.backend.isReady = false;
    const body = { env: cniEnv('ADD'), config: b64(shimStdin()) };
    const late = await http(d.socket, 'POST', '/cni', body, { 'Podnet-Ready-Timeout-Ms': '60' });
    expect(late.status).toBe(400);
    expect(errOf(late.body)).toMatchObject({ code: 11, msg: 'podnetd was not ready within 60 ms' });
    expect(d.backend.readyCalls).toBeGreaterThan(1);
    expect(d.backend.calls).toEqual([]);
    for (const bad of ['-1', '1e3', '600001', 'soon']) {
      const r = await http(d.socket, 'POST', '/cni', body, { 'Podnet-Ready-Timeout-Ms': bad });
      expect(errOf(r.body), bad).toMatchObject({ code: 4, msg: 'podnet-ready-timeout-ms must be an integer from 0 to 600000' });
    }
    // DEL is not held back by readiness (the backend decides what a not-ready DEL gets).
    await http(d.socket, 'POST', '/cni', { env: cniEnv('DEL'), config: b64(shimStdin()) }, { 'Podnet-Ready-Timeout-Ms': '60000' });
    expect(d.backend.calls.map((c) => c.method)).toEqual(['del']);
    // Ready again: the ADD goes through at once.
    d.backend.isReady = true;
    expect((await http(d.socket, 'POST', '/cni', body, { 'Podnet-Ready-Timeout-Ms': '60000' })).status).toBe(200);
    expect(d.backend.calls.map((c) => c.method)).toEqual(['del', 'add']);
  });

  it('unknown paths are 404, GET /cni and GET /delegate 405', async () => {
    const d = await startDoor(cleanup);
    expect((await http(d.socket, 'GET', '/nope')).status).toBe(404);
    expect((await http(d.socket, 'GET', '/cni')).status).toBe(405);
    expect((await http(d.socket, 'GET', '/delegate')).status).toBe(405);
    expect(d.backend.calls).toEqual([]);
  });
});

describe('POST /cni', () => {
  it('ADD: the backend gets the typed call; the answer is {"Result": <1.0.0>}', async () => {
    const d = await startDoor(cleanup);
    const stdin = shimStdin({
      socket: '/run/podnet/cni/podnet-cni.sock',
      network: 'blue',
      runtimeHandler: 'fast-net',
      capabilities: { portMappings: true, bandwidth: true, dns: true, 'io.kubernetes.cri.pod-annotations': true },
      runtimeConfig: {
        portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
        'io.kubernetes.cri.pod-annotations': { 'k8s.v1.cni.cncf.io/networks': 'storage@stor0' },
      },
    });
    const r = await cni(d, cniEnv('ADD'), stdin);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    const res = JSON.parse(r.body) as { Result: { cniVersion: string; ips: { address: string }[] } };
    expect(res.Result.cniVersion).toBe('1.0.0');
    expect(res.Result.ips[0].address).toBe('10.200.0.5/24');
    expect(d.backend.calls).toHaveLength(1);
    const rec = d.backend.calls[0];
    expect(rec.method).toBe('add');
    const call = rec.call as AttachmentCall;
    expect(call).toMatchObject({
      command: 'ADD',
      containerID: 'c0ffee00aa',
      netns: '/var/run/netns/cni-1234',
      ifName: 'eth0',
      path: ['/opt/cni/bin', '/usr/lib/cni'],
      pod: { namespace: 'default', name: 'web-0', uid: 'uid-1', infraContainerID: 'c0ffee00aa' },
      cniVersion: '1.0.0',
      configName: 'podnet',
      network: 'blue',
      runtimeHandler: 'fast-net',
      prevResult: undefined,
      interfaceAttributes: undefined,
    });
    expect(call.args.get('IgnoreUnknown')).toBe('1');
    expect(call.runtimeConfig.portMappings).toEqual([{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' }]);
    expect(call.runtimeConfig.podAnnotations.get('k8s.v1.cni.cncf.io/networks')).toBe('storage@stor0');
    expect(call.config.equals(Buffer.from(JSON.stringify(stdin)))).toBe(true);
    expect(rec.signal.aborted).toBe(false);
  });

  it('ADD answers in the stdin version when the shim asks for it (resultVersion)', async () => {
    const d = await startDoor(cleanup);
    const r040 = JSON.parse((await cni(d, cniEnv('ADD'), shimStdin({ cniVersion: '0.4.0' }), { resultVersion: '0.4.0' })).body) as { Result: { cniVersion: string; ips: { version: string }[]; interfaces: object[] } };
    expect(r040.Result.cniVersion).toBe('0.4.0');
    expect(r040.Result.ips[0].version).toBe('4');
    const r110 = JSON.parse((await cni(d, cniEnv('ADD'), shimStdin({ cniVersion: '1.1.0' }), { resultVersion: '1.1.0' })).body) as { Result: { cniVersion: string } };
    expect(r110.Result.cniVersion).toBe('1.1.0');
    const bad = await cni(d, cniEnv('ADD'), shimStdin(), { resultVersion: '0.2.0' });
    expect(errOf(bad.body).code).toBe(1);
  });

  it('containerd sends K8S_POD_* in any order: parsed, not compared as a string', async () => {
    const d = await startDoor(cleanup);
    const orders = [
      'K8S_POD_UID=uid-1;K8S_POD_NAME=web-0;IgnoreUnknown=1;K8S_POD_NAMESPACE=default',
      'K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=uid-1',
      ' K8S_POD_NAME = web-0 ;K8S_POD_NAMESPACE=default;;K8S_POD_UID=uid-1',
    ];
    for (const args of orders) expect((await cni(d, cniEnv('ADD', { CNI_ARGS: args }), shimStdin())).status).toBe(200);
    const pods = d.backend.calls.map((c) => (c.call as AttachmentCall).pod);
    for (const p of pods) expect(p).toEqual({ namespace: 'default', name: 'web-0', uid: 'uid-1', infraContainerID: '' });
  });

  it("containerd's Go field casing and the conventions' camelCase give the same runtimeConfig", async () => {
    const d = await startDoor(cleanup);
    const goCase = {
      portMappings: [
        { HostPort: 8080, ContainerPort: 80, Protocol: 'TCP', HostIP: '127.0.0.1' },
        { HostPort: 5353, ContainerPort: 53, Protocol: 'udp', HostIP: '' },
      ],
      bandwidth: { IngressRate: 1000000, IngressBurst: 4294967295, EgressRate: 2000000, EgressBurst: 4294967295 },
      dns: { Servers: ['10.96.0.10'], Searches: ['default.svc.cluster.local'], Options: ['ndots:5'] },
      'io.kubernetes.cri.pod-annotations': { a: 'b' },
    };
    const camel = {
      portMappings: [
        { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '127.0.0.1' },
        { hostPort: 5353, containerPort: 53, protocol: 'udp' },
      ],
      bandwidth: { ingressRate: 1000000, ingressBurst: 4294967295, egressRate: 2000000, egressBurst: 4294967295 },
      dns: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
      'io.kubernetes.cri.pod-annotations': { a: 'b' },
    };
    expect((await cni(d, cniEnv('ADD'), shimStdin({ runtimeConfig: goCase }))).status).toBe(200);
    expect((await cni(d, cniEnv('ADD'), shimStdin({ runtimeConfig: camel }))).status).toBe(200);
    const [a, b] = d.backend.calls.map((c) => (c.call as AttachmentCall).runtimeConfig);
    expect(a).toEqual(b);
    expect(a.portMappings[0]).toEqual({ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '127.0.0.1' });
    expect(a.bandwidth).toEqual({ ingressRate: 1000000, ingressBurst: 4294967295, egressRate: 2000000, egressBurst: 4294967295 });
    expect(a.dns).toEqual({ servers: ['10.96.0.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] });
    // containerd writes 0/0 for the direction without a limit: that direction is unset.
    await cni(d, cniEnv('ADD'), shimStdin({ runtimeConfig: { bandwidth: { IngressRate: 10000000, IngressBurst: 4294967295, EgressRate: 0, EgressBurst: 0 } } }));
    expect((d.backend.calls[2].call as AttachmentCall).runtimeConfig.bandwidth).toEqual({ ingressRate: 10000000, ingressBurst: 4294967295 });
    // A mapping without a host port forwards nothing and is dropped, as containerd does.
    await cni(d, cniEnv('ADD'), shimStdin({ runtimeConfig: { portMappings: [{ HostPort: 0, ContainerPort: 80, Protocol: 'tcp' }] } }));
    expect((d.backend.calls[3].call as AttachmentCall).runtimeConfig.portMappings).toEqual([]);
  });

  it('DEL: empty answer; no netns, no pod args and a prevResult are all fine', async () => {
    const d = await startDoor(cleanup);
    const prevResult = { cniVersion: '1.0.0', ips: [{ address: '10.200.0.5/24' }] };
    const r = await cni(d, { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c0ffee00aa', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' }, shimStdin({ prevResult }));
    expect(r.status).toBe(200);
    expect(r.body).toBe('');
    const call = d.backend.calls[0].call as AttachmentCall;
    expect(call).toMatchObject({ command: 'DEL', netns: '', pod: undefined, prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.200.0.5/24' }] } });
  });

  it('DEL errors reach the caller, never swallowed', async () => {
    const d = await startDoor(cleanup);
    d.backend.hooks.set('del', () => Promise.reject(new CNIDoorError(11, 'podnetd is recovering', 'retry')));
    const r = await cni(d, cniEnv('DEL'), shimStdin());
    expect(r.status).toBe(400);
    expect(errOf(r.body)).toEqual({ cniVersion: '1.0.0', code: 11, msg: 'podnetd is recovering', details: 'retry' });
  });

  it('a prevResult of an older version is handed over in the current shape', async () => {
    const d = await startDoor(cleanup);
    const prevResult = { cniVersion: '0.4.0', interfaces: [{ name: 'eth0' }], ips: [{ version: '4', interface: 0, address: '10.200.0.5/24' }] };
    expect((await cni(d, cniEnv('CHECK'), shimStdin({ cniVersion: '0.4.0', prevResult }))).status).toBe(200);
    const call = d.backend.calls[0].call as AttachmentCall;
    expect(call.command).toBe('CHECK');
    expect(call.prevResult?.cniVersion).toBe('1.1.0');
    expect(call.prevResult?.ips).toEqual([{ interface: 0, address: '10.200.0.5/24' }]);
  });

  it('GC hands over the valid attachments; STATUS the network; VERSION is answered by the door', async () => {
    const d = await startDoor(cleanup);
    const gc = await cni(d, { CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, shimStdin({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'abc', ifname: 'eth0' }] }));
    expect(gc.status).toBe(200);
    expect(gc.body).toBe('');
    expect(d.backend.calls[0]).toMatchObject({ method: 'gc', call: { validAttachments: [{ containerID: 'abc', ifName: 'eth0' }], cniVersion: '1.1.0' } });
    const st = await cni(d, { CNI_COMMAND: 'STATUS' }, shimStdin({ cniVersion: '1.1.0', network: 'blue' }));
    expect(st.status).toBe(200);
    expect(d.backend.calls[1]).toMatchObject({ method: 'status', call: { network: 'blue' } });
    d.backend.hooks.set('status', () => Promise.reject(new CNIDoorError(50, 'network blue is not ready')));
    expect(errOf((await cni(d, { CNI_COMMAND: 'STATUS' }, shimStdin({ cniVersion: '1.1.0' }))).body).code).toBe(50);
    const v = await cni(d, { CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' });
    expect(JSON.parse(v.body)).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    expect(d.backend.calls).toHaveLength(3);
  });

  it('a backend failure that is not a CNIDoorError is code 999 with a bounded message, and logged', async () => {
    const d = await startDoor(cleanup);
    d.backend.hooks.set('add', () => Promise.reject(new Error(`boom ${'x'.repeat(5000)}`)));
    const r = await cni(d, cniEnv('ADD'), shimStdin());
    const e = errOf(r.body);
    expect(r.status).toBe(400);
    expect(e.code).toBe(999);
    expect(e.details!.length).toBeLessThan(300);
    expect(e.details).toMatch(/^boom x+…\(\d+ bytes\)$/);
    expect(d.logs.some((l) => l['level'] === 50 && l['door'] === 'cni' && l['outcome'] === 'code 999')).toBe(true);
  });

  it('an engine answering ADD with a non-1.x result is code 999', async () => {
    const d = await startDoor(cleanup);
    d.backend.hooks.set('add', () => Promise.resolve({ cniVersion: '0.4.0' }));
    expect(errOf((await cni(d, cniEnv('ADD'), shimStdin())).body).code).toBe(999);
  });

  it('logs one line per request with door, command, container id, ifname, outcome and duration', async () => {
    const d = await startDoor(cleanup);
    await cni(d, cniEnv('ADD'), shimStdin());
    await cni(d, cniEnv('ADD', { CNI_IFNAME: 'bad/name' }), shimStdin());
    const lines = d.logs.filter((l) => l['door'] === 'cni' && l['route'] === '/cni');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ command: 'ADD', containerID: 'c0ffee00aa', ifName: 'eth0', outcome: 'OK' });
    expect(typeof lines[0]['durationMs']).toBe('number');
    // A value that failed its check is not logged as a field.
    expect(lines[1]).toMatchObject({ command: 'ADD', containerID: 'c0ffee00aa', outcome: 'code 4' });
    expect(lines[1]['ifName']).toBeUndefined();
  });
});

describe('validation: every bad request is a CNI error naming what was wrong, and the backend sees nothing', () => {
  const long = 'a'.repeat(300);
  const cases: Array<[string, Record<string, string>, unknown, number, RegExp, Record<string, unknown>?]> = [
    ['no CNI_COMMAND', { CNI_CONTAINERID: 'x' }, shimStdin(), 4, /CNI_COMMAND is required/],
    ['unknown CNI_COMMAND', cniEnv('ATTACH'), shimStdin(), 4, /CNI_COMMAND "ATTACH" is not one of/],
    ['lower-case CNI_COMMAND', cniEnv('add'), shimStdin(), 4, /CNI_COMMAND "add"/],
    ['no CNI_CONTAINERID', cniEnv('ADD', { CNI_CONTAINERID: '' }), shimStdin(), 4, /CNI_CONTAINERID is required/],
    ['CNI_CONTAINERID starting with "-"', cniEnv('ADD', { CNI_CONTAINERID: '-abc' }), shimStdin(), 4, /CNI_CONTAINERID "-abc" is invalid/],
    ['CNI_CONTAINERID with a "/"', cniEnv('ADD', { CNI_CONTAINERID: 'a/../b' }), shimStdin(), 4, /CNI_CONTAINERID/],
    ['CNI_CONTAINERID too long (quoted bounded)', cniEnv('ADD', { CNI_CONTAINERID: long }), shimStdin(), 4, /CNI_CONTAINERID "a{128}"…\(300 bytes\) is invalid/],
    ['no CNI_IFNAME', cniEnv('ADD', { CNI_IFNAME: '' }), shimStdin(), 4, /CNI_IFNAME is required/],
    ['CNI_IFNAME of 16 bytes', cniEnv('ADD', { CNI_IFNAME: 'abcdefghijklmnop' }), shimStdin(), 4, /CNI_IFNAME "abcdefghijklmnop" is invalid/],
    ['CNI_IFNAME of 8 two-byte characters', cniEnv('ADD', { CNI_IFNAME: 'éééééééé' }), shimStdin(), 4, /CNI_IFNAME/],
    ['CNI_IFNAME with a space', cniEnv('ADD', { CNI_IFNAME: 'eth 0' }), shimStdin(), 4, /CNI_IFNAME/],
    ['CNI_IFNAME ".."', cniEnv('ADD', { CNI_IFNAME: '..' }), shimStdin(), 4, /CNI_IFNAME/],
    ['ADD without CNI_NETNS', cniEnv('ADD', { CNI_NETNS: '' }), shimStdin(), 4, /CNI_NETNS is required/],
    ['relative CNI_NETNS', cniEnv('ADD', { CNI_NETNS: 'netns/x' }), shimStdin(), 4, /CNI_NETNS "netns\/x" is not an absolute path/],
    ['CNI_NETNS with a newline', cniEnv('ADD', { CNI_NETNS: '/var/run/netns/x\ny' }), shimStdin(), 4, /CNI_NETNS "\/var\/run\/netns\/x\\ny"/],
    ['relative CNI_PATH entry', cniEnv('ADD', { CNI_PATH: '/opt/cni/bin:bin' }), shimStdin(), 4, /CNI_PATH entry "bin"/],
    ['CNI_ARGS element without "="', cniEnv('ADD', { CNI_ARGS: 'K8S_POD_NAME=a;oops' }), shimStdin(), 4, /CNI_ARGS element "oops" is not KEY=VALUE/],
    ['CNI_ARGS value smuggling a second "="', cniEnv('ADD', { CNI_ARGS: 'K8S_POD_NAME=a=b;K8S_POD_NAMESPACE=c' }), shimStdin(), 4, /not KEY=VALUE/],
    ['CNI_ARGS key twice', cniEnv('ADD', { CNI_ARGS: 'K8S_POD_NAME=a;K8S_POD_NAMESPACE=c;K8S_POD_NAME=b' }), shimStdin(), 4, /gives K8S_POD_NAME twice/],
    ['ADD without K8S_POD_NAME', cniEnv('ADD', { CNI_ARGS: 'K8S_POD_NAMESPACE=default' }), shimStdin(), 4, /CNI_ARGS lacks K8S_POD_NAME/],
    ['an env value that is not a string', { ...cniEnv('ADD'), CNI_X: 1 as unknown as string }, shimStdin(), 4, /"CNI_X" must be a string/],
    ['config without cniVersion', cniEnv('ADD'), { name: 'podnet', type: 'podnet-cni' }, 7, /cniVersion is required/],
    ['config of a version the shim does not speak', cniEnv('ADD'), shimStdin({ cniVersion: '0.2.0' }), 1, /cniVersion "0.2.0" is not supported/],
    ['config of an unknown version', cniEnv('ADD'), shimStdin({ cniVersion: '9.9.9' }), 1, /not supported/],
    ['config without name', cniEnv('ADD'), { cniVersion: '1.0.0', type: 'podnet-cni' }, 7, /name is required/],
    ['config with a bad network', cniEnv('ADD'), shimStdin({ network: '../etc' }), 7, /network "..\/etc" is invalid/],
    ['config with a relative socket', cniEnv('ADD'), shimStdin({ socket: 'x.sock' }), 7, /socket "x.sock" is not an absolute path/],
    ['config with an unknown key', cniEnv('ADD'), shimStdin({ colour: 'blue' }), 2, /unsupported field "colour" \(value "blue"\)/],
    ['runtimeConfig with an unknown capability', cniEnv('ADD'), shimStdin({ runtimeConfig: { teleport: true } }), 2, /"runtimeConfig.teleport"/],
    ['port out of range', cniEnv('ADD'), shimStdin({ runtimeConfig: { portMappings: [{ hostPort: 70000, containerPort: 80, protocol: 'tcp' }] } }), 7, /portMappings\[0\]\.hostPort: expected an integer from 0 to 65535, got 70000/],
    ['container port 0', cniEnv('ADD'), shimStdin({ runtimeConfig: { portMappings: [{ HostPort: 80, ContainerPort: 0, Protocol: 'tcp' }] } }), 7, /containerPort/],
    ['unknown protocol', cniEnv('ADD'), shimStdin({ runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'icmp' }] } }), 7, /"icmp" is not tcp, udp or sctp/],
    ['host IP that is not an IP', cniEnv('ADD'), shimStdin({ runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'tcp', HostIP: 'localhost' }] } }), 7, /"localhost" is not an IP address/],
    ['both spellings disagreeing', cniEnv('ADD'), shimStdin({ runtimeConfig: { portMappings: [{ hostPort: 80, HostPort: 81, containerPort: 80, protocol: 'tcp' }] } }), 7, /hostPort and HostPort disagree/],
    ['a port mapping with an unknown key', cniEnv('ADD'), shimStdin({ runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'tcp', range: 3 }] } }), 2, /portMappings\[0\]\.range/],
    ['negative rate', cniEnv('ADD'), shimStdin({ runtimeConfig: { bandwidth: { IngressRate: -1 } } }), 7, /bandwidth.ingressRate/],
    ['fractional burst', cniEnv('ADD'), shimStdin({ runtimeConfig: { bandwidth: { egressBurst: 1.5 } } }), 7, /bandwidth.egressBurst/],
    ['DNS server that is not an IP', cniEnv('ADD'), shimStdin({ runtimeConfig: { dns: { Servers: ['dns.example'] } } }), 7, /dns.servers\[0\]: "dns.example" is not an IP address/],
    ['annotations that are not strings', cniEnv('ADD'), shimStdin({ runtimeConfig: { 'io.kubernetes.cri.pod-annotations': { a: 1 } } }), 7, /pod-annotations\["a"\]: expected a string/],
    ['a malformed prevResult', cniEnv('DEL'), shimStdin({ prevResult: { cniVersion: '1.0.0', ips: [{ address: 'nope' }] } }), 7, /prevResult: invalid CNI result: ips\[0\]\.address/],
    ['GC on a 1.0.0 config', { CNI_COMMAND: 'GC' }, shimStdin(), 1, /GC needs cniVersion 1.1.0/],
    ['GC with a bad valid attachment', { CNI_COMMAND: 'GC' }, shimStdin({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: '', ifname: 'eth0' }] }), 7, /containerID "" is not a container id/],
    ['valid attachments outside GC', cniEnv('ADD'), shimStdin({ 'cni.dev/valid-attachments': [] }), 2, /cni.dev\/valid-attachments/],
    ['STATUS on a 1.0.0 config', { CNI_COMMAND: 'STATUS' }, shimStdin(), 1, /STATUS needs cniVersion 1.1.0/],
    ['interfaceAttributes with a bad MAC', cniEnv('ADD'), shimStdin(), 7, /interfaceAttributes.mac: "zz" is not a MAC address/, { interfaceAttributes: { mac: 'zz' } }],
    ['interfaceAttributes with an unknown key', cniEnv('ADD'), shimStdin(), 2, /interfaceAttributes.vlan/, { interfaceAttributes: { vlan: 3 } }],
    ['an unknown envelope key', cniEnv('ADD'), shimStdin(), 2, /unsupported field "Extra"/, { Extra: 1 }],
  ];
  for (const [what, env, config, code, msg, extra] of cases) {
    it(`${what} → code ${code}`, async () => {
      const d = await startDoor(cleanup);
      const r = await cni(d, env, config, extra);
      expect(r.status).toBe(400);
      const e = errOf(r.body);
      expect(e.code, r.body).toBe(code);
      expect(`${e.msg}: ${e.details ?? ''}`).toMatch(msg);
      expect(d.backend.calls).toEqual([]);
    });
  }

  it('bodies that are not the envelope: garbage, wrong JSON types, bad base64, nesting, non-UTF-8', async () => {
    const d = await startDoor(cleanup);
    const expectCode = async (body: string | Buffer, code: number, msg: RegExp) => {
      const r = await http(d.socket, 'POST', '/cni', body);
      expect(r.status).toBe(400);
      expect(errOf(r.body).code, r.body).toBe(code);
      expect(errOf(r.body).msg).toMatch(msg);
    };
    await expectCode('{"env": ', 6, /request body is not valid JSON/);
    await expectCode('[1,2]', 6, /expected a JSON object/);
    await expectCode('', 6, /not valid JSON/);
    await expectCode(JSON.stringify({ env: 'CNI_COMMAND=ADD', config: b64(shimStdin()) }), 4, /env: expected an object/);
    await expectCode(JSON.stringify({ env: cniEnv('ADD') }), 7, /config is required/);
    await expectCode(JSON.stringify({ env: cniEnv('ADD'), config: '!!!not base64' }), 6, /not standard base64/);
    await expectCode(JSON.stringify({ env: cniEnv('ADD'), config: b64('{"cniVersion": ') }), 6, /config is not valid JSON/);
    await expectCode(`{"env": {}, "x": ${'['.repeat(100)}${']'.repeat(100)}}`, 6, /nested deeper than 32/);
    await expectCode(JSON.stringify({ env: cniEnv('ADD'), config: b64(`{"a": ${'{"b": '.repeat(40)}1${'}'.repeat(40)}}`) }), 6, /config is nested deeper/);
    await expectCode(Buffer.concat([Buffer.from('{"env": {"CNI_COMMAND": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}}')]), 6, /not UTF-8/);
    expect(d.backend.calls).toEqual([]);
  });

  it('an oversized body is refused without reading it all, declared or streamed', async () => {
    const d = await startDoor(cleanup);
    const big = JSON.stringify({ env: cniEnv('ADD'), config: b64(shimStdin({ x: 'y'.repeat(MAX_BODY_BYTES) })) });
    const r = await http(d.socket, 'POST', '/cni', big);
    expect(r.status).toBe(400);
    expect(errOf(r.body)).toMatchObject({ code: 6, msg: `request body is larger than ${MAX_BODY_BYTES} bytes` });
    // Chunked, so no Content-Length tells the server in advance.
    const streamed = await new Promise<string>((resolve, reject) => {
      const c = connect(d.socket);
      let out = '';
      c.on('data', (b) => (out += b.toString()));
      c.on('close', () => resolve(out));
      c.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' || e.code === 'ECONNRESET' ? resolve(out) : reject(e)));
      c.write('POST /cni HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
      const chunk = 'z'.repeat(64 * 1024);
      const send = (n: number): void => {
        if (n === 0 || c.destroyed) return;
        c.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`, () => send(n - 1));
      };
      send(24);
    });
    expect(streamed).toMatch(/^HTTP\/1.1 400/);
    expect(streamed).toContain(`larger than ${MAX_BODY_BYTES} bytes`);
    expect((await http(d.socket, 'GET', '/healthz')).status).toBe(200);
    expect(d.backend.calls).toEqual([]);
  });
});

describe('POST /delegate', () => {
  const netConf = { cniVersion: '1.0.0', name: 'storage-net', type: 'macvlan', master: 'eth1', ipam: { type: 'host-local', ranges: [[{ subnet: '192.168.50.0/24' }]] } };
  const dEnv = (command: string) => ({
    CNI_COMMAND: command,
    CNI_CONTAINERID: 'c0ffee00aa',
    CNI_NETNS: '/var/run/netns/cni-1234',
    CNI_IFNAME: 'net1',
    CNI_ARGS: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-0;K8S_POD_UID=u-2',
  });

  it('ADD (as multus-dynamic-networks-controller sends it) → {"Result": ...}; DEL → empty', async () => {
    const d = await startDoor(cleanup);
    const attrs = { ips: ['192.168.50.9/24'], mac: '02:00:00:00:00:09', 'cni-args': { foo: 'bar' } };
    const r = await http(d.socket, 'POST', '/delegate', { env: dEnv('ADD'), config: b64(netConf), interfaceAttributes: attrs });
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as { Result: { cniVersion: string } }).Result.cniVersion).toBe('1.0.0');
    expect(d.backend.calls[0]).toMatchObject({
      method: 'delegateAdd',
      call: { command: 'ADD', ifName: 'net1', networkName: 'storage-net', cniVersion: '1.0.0', pod: { namespace: 'shop', name: 'cart-0', uid: 'u-2' }, interfaceAttributes: { ips: ['192.168.50.9/24'], mac: '02:00:00:00:00:09' } },
    });
    const call = d.backend.calls[0].call as DelegateCall;
    expect(call.interfaceAttributes?.cniArgs.get('foo')).toBe('bar');
    const del = await http(d.socket, 'POST', '/delegate', { env: dEnv('DEL'), config: b64(netConf) });
    expect(del.status).toBe(200);
    expect(del.body).toBe('');
    expect(d.backend.calls[1].method).toBe('delegateDel');
  });

  it('refuses CHECK, a missing pod, a bad network config and bad interface attributes', async () => {
    const d = await startDoor(cleanup);
    const codeOf = async (body: unknown) => errOf((await http(d.socket, 'POST', '/delegate', body)).body);
    expect(await codeOf({ env: dEnv('CHECK'), config: b64(netConf) })).toMatchObject({ code: 4, msg: expect.stringMatching(/CNI_COMMAND "CHECK" is not one of ADD, DEL/) as unknown });
    expect((await codeOf({ env: { ...dEnv('ADD'), CNI_ARGS: '' }, config: b64(netConf) })).code).toBe(4);
    // The door asks a delegated config for its cniVersion (the library alone would read none as 0.1.0) and its name.
    expect(await codeOf({ env: dEnv('ADD'), config: b64({ name: 'x', type: 'bridge' }) })).toMatchObject({ code: 7, msg: expect.stringMatching(/cniVersion/) as unknown });
    expect(await codeOf({ env: dEnv('ADD'), config: b64({ cniVersion: '1.0.0', type: 'bridge' }) })).toMatchObject({ code: 7, msg: expect.stringMatching(/name/) as unknown });
    expect(await codeOf({ env: dEnv('ADD'), config: b64({ cniVersion: '1.0.0', name: 'x', type: '../../bin/sh' }) })).toMatchObject({ code: 7, msg: expect.stringMatching(/invalid plugin type/) as unknown });
    expect((await codeOf({ env: dEnv('ADD'), config: b64(netConf), interfaceAttributes: { ips: ['10.0.0.1/99'] } })).code).toBe(7);
    expect(d.backend.calls).toEqual([]);
  });
});

describe('concurrency and clients that go away', () => {
  it('serves many calls at once: all are in the backend together before any answers', async () => {
    const d = await startDoor(cleanup);
    const n = 40;
    let release!: () => void;
    const all = new Promise<void>((r) => (release = r));
    d.backend.hooks.set('add', async (r) => {
      if (d.backend.calls.length === n) release();
      await all;
      const c = r.call as AttachmentCall;
      return { cniVersion: '1.0.0', ips: [{ address: `10.200.0.${Number(c.containerID.slice(1)) + 2}/24` }] };
    });
    const answers = await Promise.all(
      Array.from({ length: n }, (_, i) => cni(d, cniEnv('ADD', { CNI_CONTAINERID: `c${i}` }), shimStdin())),
    );
    answers.forEach((a, i) => {
      expect(a.status).toBe(200);
      expect((JSON.parse(a.body) as { Result: { ips: { address: string }[] } }).Result.ips[0].address).toBe(`10.200.0.${i + 2}/24`);
    });
  });

  it('a client that disconnects mid-body never reaches the backend; one that disconnects mid-call aborts its signal', async () => {
    const d = await startDoor(cleanup);
    const body = JSON.stringify({ env: cniEnv('ADD'), config: b64(shimStdin()) });
    await new Promise<void>((resolve) => {
      const c = connect(d.socket, () => {
        c.write(`POST /cni HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 40)}`, () => {
          c.destroy();
          resolve();
        });
      });
    });
    let entered!: () => void;
    const inBackend = new Promise<void>((r) => (entered = r));
    const aborted = new Promise<unknown>((resolve) => {
      d.backend.hooks.set('add', (r) => {
        entered();
        return new Promise((_, reject) => r.signal.addEventListener('abort', () => {
          resolve(r.signal.reason);
          reject(new CNIDoorError(11, 'canceled'));
        }));
      });
    });
    const c = connect(d.socket, () => c.write(`POST /cni HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
    c.on('error', () => undefined);
    await inBackend;
    c.destroy();
    expect(String(await aborted)).toMatch(/closed the connection/);
    // Only the second client got to the backend, and the door still serves.
    expect(d.backend.calls).toHaveLength(1);
    expect((await http(d.socket, 'GET', '/healthz')).status).toBe(200);
    const lines = d.logs.filter((l) => l['route'] === '/cni');
    expect(lines.some((l) => l['aborted'] === true)).toBe(true);
  });

  it('close() lets an in-flight call finish', async () => {
    const c2 = new Cleanup();
    const d = await startDoor(c2);
    let finish!: () => void;
    const gate = new Promise<void>((r) => (finish = r));
    let entered!: () => void;
    const inBackend = new Promise<void>((r) => (entered = r));
    d.backend.hooks.set('del', async () => {
      entered();
      await gate;
    });
    const pending = cni(d, cniEnv('DEL'), shimStdin());
    await inBackend;
    const closing = d.server.close();
    finish();
    expect((await pending).status).toBe(200);
    await closing;
    await c2.run();
  });
});

describe('multus-shim compatibility', () => {
  it('a request shaped as multus-shim sends it (whole environment, Go-marshalled []byte) works', async () => {
    const dir = cleanup.dir(await tmpDir('podnet-door-'));
    await mkdir(join(dir, 'multus'));
    const backend = new RecordingBackend();
    const server = new CNIDoorServer({ backend, log: pino({ level: 'silent' }) });
    const socket = join(dir, 'multus', 'multus.sock');
    await server.listen(socket);
    cleanup.push(() => server.close());
    // multus-shim: WaitUntilAPIReady POSTs "null" to /readyz, then POSTs api.Request to /cni.
    expect((await http(socket, 'POST', '/readyz', 'null')).status).toBe(200);
    const stdin = { cniVersion: '0.3.1', name: 'multus-cni-network', type: 'multus-shim', socketDir: join(dir, 'multus'), logLevel: 'verbose', logToStderr: true };
    const env = { ...cniEnv('ADD'), PATH: '/usr/sbin:/usr/bin', HOME: '/root', LANG: 'C.UTF-8' };
    const r = await http(socket, 'POST', '/cni', { env, config: b64(stdin) });
    expect(r.status).toBe(200);
    // Always 1.0.0 on the wire: multus-shim converts to its stdin's version itself.
    expect((JSON.parse(r.body) as { Result: { cniVersion: string } }).Result.cniVersion).toBe('1.0.0');
    expect(backend.calls[0].call).toMatchObject({ cniVersion: '0.3.1', configName: 'multus-cni-network', network: undefined });
  });
});

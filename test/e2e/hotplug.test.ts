// Hot-plug against the REAL daemon (dist/, spawned by the harness) over its unix socket: the
// podnet.v1.PodNetworks service with the generated client, the `podnet attach|detach|networks`
// CLI, and kill -9 of podnetd while an attach's ADD or a detach's DEL hangs (fault plugin), then
// a restart: the record and the namespace agree and nothing is left.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AttachNetworkRequest,
  PodNetworksClient,
  type AttachNetworkResponse,
  NetworkSelection,
  type DeepPartial,
  type ListNetworksResponse,
} from '../../src/gen/podnet/v1/podnetworks.js';
import type { SandboxRecord } from '../../src/engine/store.js';
import { PodSandboxStatsRequest } from '../../src/gen/runtime/v1/api.js';
import { TEST_PLUGIN_PATH, createParentLink, freeHostPort, delHostLink, linkExists, linkNames, nsExec, pidAlive, randomHex, shOk, uniqueSubnet, waitFor } from '../helpers/env.js';
import { rejectionOf } from '../helpers/refusal.js';
import { REPO_ROOT, expectNothingLeft, listDir, newRoot, onCleanup, podConfig, startDaemon, testNetwork, uniqueBridge, type Daemon, type DaemonOptions } from './harness.js';

const PODNET = join(REPO_ROOT, 'bin', 'podnet');
const IPV4_RE = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

afterAll(async () => {
  await expectNothingLeft();
});

class CallError extends Error {
  constructor(readonly code: status, message: string) {
    super(message);
  }
}

/** The PodNetworks client of a daemon, each method as a promise. */
function podNetworks(d: Daemon) {
  const client = new PodNetworksClient(`unix://${d.socket}`, credentials.createInsecure());
  onCleanup(() => client.close(), 'PodNetworks client');
  const p =
    <Req, Res>(fn: (req: Req, md: Metadata, opts: { deadline: Date }, cb: (e: ServiceError | null, r: Res) => void) => unknown) =>
    (req: Req): Promise<Res> =>
      new Promise((resolve, reject) =>
        fn(req, new Metadata(), { deadline: new Date(Date.now() + 60_000) }, (e, r) => (e ? reject(new CallError(e.code, e.details)) : resolve(r))),
      );
  return {
    attach: (id: string, network: DeepPartial<NetworkSelection> | undefined) =>
      p<AttachNetworkRequest, AttachNetworkResponse>(client.attachNetwork.bind(client))(AttachNetworkRequest.fromPartial({ podSandboxId: id, network })),
    /** As given, no fromPartial: a map key fromPartial would drop ("__proto__") goes on the wire. */
    attachRaw: (req: AttachNetworkRequest) => p<AttachNetworkRequest, AttachNetworkResponse>(client.attachNetwork.bind(client))(req),
    detach: (id: string, iface: string) => p<{ podSandboxId: string; interface: string }, unknown>(client.detachNetwork.bind(client))({ podSandboxId: id, interface: iface }),
    list: (id: string) => p<{ podSandboxId: string }, ListNetworksResponse>(client.listNetworks.bind(client))({ podSandboxId: id }),
  };
}

const callError = (p: Promise<unknown>): Promise<CallError> => rejectionOf(p, CallError);

function nad(name: string, config: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name, namespace: 'e2e' }, spec: { config: JSON.stringify(config) } });
}

/** A daemon with a cluster bridge network and NADs: a bridge (storage), a macvlan (fast), a bridge whose chain can hang (slow). */
async function hotplugDaemon(top: DaemonOptions['top'] = {}) {
  const root = await newRoot();
  const cluster = testNetwork(root);
  const ipam = join(root, 'ipam');
  const storage = { name: `hp-br-${randomHex(4)}`, subnet: uniqueSubnet(), bridge: uniqueBridge() };
  const fast = { name: `hp-mv-${randomHex(4)}`, subnet: uniqueSubnet() };
  const slow = { name: `hp-slow-${randomHex(4)}`, subnet: uniqueSubnet(), bridge: uniqueBridge() };
  const parent = `pnp${randomHex(5)}`;
  await createParentLink(parent);
  onCleanup(() => delHostLink(parent), `ip link del ${parent}`);
  if (await linkExists(undefined, `${parent}p`)) await shOk('ip', ['link', 'set', `${parent}p`, 'up']);
  const hangAdd = join(root, 'hang-add');
  const hangDel = join(root, 'hang-del');
  const hostLocal = (s: { subnet: string; gateway: string }) => ({ type: 'host-local', dataDir: ipam, ranges: [[{ subnet: s.subnet, gateway: s.gateway }]] });
  await mkdir(join(root, 'attachments.d'), { recursive: true });
  await writeFile(join(root, 'attachments.d', 'storage.json'), nad('storage', { cniVersion: '1.0.0', name: storage.name, plugins: [{ type: 'bridge', bridge: storage.bridge, isGateway: true, ipMasq: false, ipam: hostLocal(storage.subnet) }] }));
  await writeFile(join(root, 'attachments.d', 'fast.json'), nad('fast', { cniVersion: '1.0.0', name: fast.name, type: 'macvlan', master: parent, mode: 'bridge', ipam: hostLocal(fast.subnet) }));
  await writeFile(
    join(root, 'attachments.d', 'slow.json'),
    nad('slow', {
      cniVersion: '1.0.0',
      name: slow.name,
      plugins: [
        { type: 'bridge', bridge: slow.bridge, isGateway: false, ipMasq: false, ipam: hostLocal(slow.subnet) },
        { type: 'e2e-passthrough', hangAddIfExists: hangAdd, hangDelIfExists: hangDel },
      ],
    }),
  );
  const d = await startDaemon({ root, confFiles: { '10-e2e.conflist': cluster.text }, cni: { bin_dirs: [...TEST_PLUGIN_PATH] }, top });
  const allocs = async (name: string) => (await listDir(join(ipam, name))).filter((n) => IPV4_RE.test(n));
  return { d, root, storage, fast, slow, hangAdd, hangDel, allocs };
}

async function record(d: Daemon, id: string): Promise<SandboxRecord> {
  return JSON.parse(await readFile(join(d.stateDir, 'sandboxes', `${id}.json`), 'utf8')) as SandboxRecord;
}

describe('podnet.v1.PodNetworks over the socket', () => {
  it('attach a bridge and a macvlan network, traffic on them, list, detach: IPs released, interfaces gone', async () => {
    const { d, storage, fast, allocs } = await hotplugDaemon();
    const api = podNetworks(d);
    const a = await d.rpc.run(podConfig());
    const b = await d.rpc.run(podConfig());
    const nsA = await d.rpc.netnsPath(a);
    const nsB = await d.rpc.netnsPath(b);
    // By unique prefix, as the CRI RPCs.
    const br = await api.attach(a.slice(0, 12), { name: 'storage' });
    expect(br.status).toMatchObject({ name: 'e2e/storage', interface: 'net1', default: false });
    const mvA = await api.attach(a, { name: 'fast', namespace: 'e2e', interface: 'fast0', cniArgs: { constructor: 'x' } });
    const mvB = await api.attach(b, { name: 'fast' });
    const ping = await nsExec(nsA, 'ping', ['-c', '1', '-W', '2', '-I', 'net1', storage.subnet.gateway]);
    expect(ping.exitCode, ping.stdout + ping.stderr).toBe(0);
    const pod2pod = await nsExec(nsA, 'ping', ['-c', '1', '-W', '2', '-I', 'fast0', mvB.status!.ips[0]]);
    expect(pod2pod.exitCode, pod2pod.stdout + pod2pod.stderr).toBe(0);
    expect((await api.list(a)).networks.map((n) => n.interface)).toEqual(['eth0', 'net1', 'fast0']);
    // Verbose PodSandboxStatus shows the same live set.
    const info = await d.rpc.statusInfo(a);
    expect((info['network-status'] as Array<{ interface: string }>).map((n) => n.interface)).toEqual(['eth0', 'net1', 'fast0']);
    expect(mvA.status!.ips[0].startsWith(`${fast.subnet.prefix}.`)).toBe(true);
    // So do the sandbox's network stats (read inside its namespace).
    const statsOf = async () => (await d.rpc.call('podSandboxStats', PodSandboxStatsRequest.fromPartial({ podSandboxId: a }))).stats!.linux!.network!.interfaces.map((i) => i.name);
    expect(await statsOf()).toEqual(['eth0', 'net1', 'fast0']);
    await api.detach(a, 'net1');
    await api.detach(a, 'fast0');
    await api.detach(b, 'net1');
    expect(await statsOf()).toEqual(['eth0']);
    expect(await linkNames(nsA)).toEqual(['eth0', 'lo']);
    expect(await linkNames(nsB)).toEqual(['eth0', 'lo']);
    expect(await allocs(storage.name)).toEqual([]);
    expect(await allocs(fast.name)).toEqual([]);
    expect((await api.list(a)).networks.map((n) => n.interface)).toEqual(['eth0']);
  });

  it('every refusal has its code: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION', async () => {
    const port = await freeHostPort();
    const { d, storage, allocs } = await hotplugDaemon({ metrics_address: `127.0.0.1:${port}` });
    const api = podNetworks(d);
    const id = await d.rpc.run(podConfig());
    const cases: Array<[() => Promise<unknown>, status, string]> = [
      [() => api.attach(id, { name: 'nope' }), status.INVALID_ARGUMENT, 'no NetworkAttachmentDefinition e2e/nope'],
      [() => api.attach(id, { name: 'storage', mac: 'zz' }), status.INVALID_ARGUMENT, '"mac"'],
      [() => api.attach(id, { name: 'storage', ips: ['10.9.9.9/24'] }), status.INVALID_ARGUMENT, '"ips" capability'],
      [() => api.attach(id, { name: 'storage', portMappings: [{ hostPort: 0, containerPort: 80 }] }), status.INVALID_ARGUMENT, 'portMappings[0].hostPort'],
      [() => api.attach(id, { name: 'storage', timeout: 'soon' }), status.INVALID_ARGUMENT, '"timeout"'],
      [() => api.attach(id, { name: 'storage', cniArgs: { 'a;b': 'x' } }), status.INVALID_ARGUMENT, 'cni-args'],
      [() => api.attach(id, undefined), status.INVALID_ARGUMENT, 'network is required'],
      [
        () => api.attachRaw({ podSandboxId: id, network: { ...NetworkSelection.fromPartial({ name: 'storage' }), cniArgs: JSON.parse('{"__proto__": "x"}') as Record<string, string> } }),
        status.INVALID_ARGUMENT,
        'network.cni_args key "__proto__"',
      ],
      [() => api.attach('ffffffffffff', { name: 'storage' }), status.NOT_FOUND, 'not found'],
      [() => api.attach('x/../y', { name: 'storage' }), status.INVALID_ARGUMENT, 'not a sandbox id'],
      [() => api.detach(id, 'eth0'), status.FAILED_PRECONDITION, 'cluster network'],
      [() => api.detach(id, 'net9'), status.NOT_FOUND, 'net9'],
      [() => api.detach(id, ''), status.INVALID_ARGUMENT, 'interface is required'],
      [() => api.list('ffffffffffff'), status.NOT_FOUND, 'not found'],
    ];
    for (const [p, code, text] of cases) {
      const e = await callError(p());
      expect(e.code, e.message).toBe(code);
      expect(e.message).toContain(text);
    }
    await api.attach(id, { name: 'storage', interface: 'st0' });
    expect((await callError(api.attach(id, { name: 'fast', interface: 'st0' }))).code).toBe(status.ALREADY_EXISTS);
    // Retrying the same attach answers the same entry.
    expect((await api.attach(id, { name: 'storage', interface: 'st0' })).status!.interface).toBe('st0');
    await d.rpc.stop(id);
    const stopped = await callError(api.attach(id, { name: 'storage' }));
    expect(stopped.code).toBe(status.FAILED_PRECONDITION);
    expect(stopped.message).toContain('notready');
    // Stop took the hot-plugged attachment down with the rest.
    expect(await allocs(storage.name)).toEqual([]);
    // Counted by outcome.
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/podnet_network_hotplug_total\{door="cri",op="attach",outcome="ok"\} 2/);
    expect(metrics).toMatch(/podnet_network_hotplug_total\{door="cri",op="attach",outcome="invalid-request"\} 6/);
    expect(metrics).toMatch(/podnet_network_hotplug_total\{door="cri",op="detach",outcome="failed-precondition"\} 1/);
  });
});

describe('the CLI', () => {
  it('podnet attach / networks / detach against the running daemon; exit codes 0, 1, 2', async () => {
    const { d, storage, allocs } = await hotplugDaemon();
    const id = await d.rpc.run(podConfig());
    const ns = await d.rpc.netnsPath(id);
    const podnet = (...args: string[]) => execa(PODNET, [...args, '--socket', d.socket], { reject: false });
    const attached = await podnet('attach', id.slice(0, 10), 'e2e/storage@stor0');
    expect(attached.exitCode, attached.stderr).toBe(0);
    const entry = JSON.parse(attached.stdout) as { name: string; interface: string; ips: string[] };
    expect(entry).toMatchObject({ name: 'e2e/storage', interface: 'stor0' });
    expect(await linkNames(ns)).toEqual(['eth0', 'lo', 'stor0']);
    const listed = await podnet('networks', id);
    expect(listed.exitCode).toBe(0);
    expect((JSON.parse(listed.stdout) as Array<{ interface: string }>).map((n) => n.interface)).toEqual(['eth0', 'stor0']);
    // network-status reads the record: the same live set.
    const fromRecord = await execa(PODNET, ['network-status', id, '--state-dir', d.stateDir], { reject: false });
    expect(JSON.parse(fromRecord.stdout)).toEqual(JSON.parse(listed.stdout));
    const fast = await podnet('attach', id, 'fast', '--mac', '02:00:00:00:00:01');
    expect(fast.exitCode).toBe(1);
    expect(fast.stderr).toContain('"mac" capability');
    expect((await podnet('detach', id, 'eth0')).exitCode).toBe(1);
    expect((await podnet('attach', id)).exitCode).toBe(2);
    expect((await podnet('networks')).exitCode).toBe(2);
    expect((await execa(PODNET, ['attach', '--help'], { reject: false })).stdout).toContain('attach <sandbox>');
    expect((await execa(PODNET, ['networks', id, '--socket', join(d.root, 'nope.sock')], { reject: false })).exitCode).toBe(1);
    const detached = await podnet('detach', id, 'stor0');
    expect(detached.exitCode, detached.stderr).toBe(0);
    expect(await linkNames(ns)).toEqual(['eth0', 'lo']);
    expect(await allocs(storage.name)).toEqual([]);
  });
});

describe('kill -9 of podnetd', () => {
  it('during an attach (ADD hangs) and during a detach (DEL hangs): after a restart the record and the namespace agree, nothing leaked', async () => {
    const { d, slow, hangAdd, hangDel, allocs } = await hotplugDaemon();
    const api = podNetworks(d);
    const id = await d.rpc.run(podConfig());
    const ns = await d.rpc.netnsPath(id);
    // 1. ADD: bridge allocated an IP, the last plugin hangs; the daemon dies.
    await writeFile(hangAdd, '');
    const pending = api.attach(id, { name: 'slow' }).catch((e: unknown) => e);
    expect(await waitFor(async () => (await readFile(`${hangAdd}.pids`, 'utf8').catch(() => '')) !== '', 20_000)).toBe(true);
    expect((await record(d, id)).attachments.find((a) => a.ifName === 'net1')?.phase).toBe('adding');
    expect(await allocs(slow.name)).toHaveLength(1);
    const hung = (await readFile(`${hangAdd}.pids`, 'utf8')).trim().split(/\s+/).map(Number);
    await d.kill();
    await pending;
    await rm(hangAdd);
    await d.spawn();
    for (const pid of hung) expect(await waitFor(async () => !(await pidAlive(pid)), 5000), `pid ${pid}`).toBe(true);
    let rec = await record(d, id);
    expect(rec.phase).toBe('ready');
    expect(rec.attachments.map((a) => a.ifName)).toEqual(['lo', 'eth0']);
    expect(await linkNames(ns)).toEqual(['eth0', 'lo']);
    expect(await allocs(slow.name)).toEqual([]);
    // 2. DEL: attached fine, then the detach's DEL hangs; the daemon dies.
    const api2 = podNetworks(d);
    await api2.attach(id, { name: 'slow' });
    await writeFile(hangDel, '');
    const detaching = api2.detach(id, 'net1').catch((e: unknown) => e);
    expect(await waitFor(async () => (await readFile(`${hangDel}.pids`, 'utf8').catch(() => '')) !== '', 20_000)).toBe(true);
    expect((await record(d, id)).attachments.find((a) => a.ifName === 'net1')?.phase).toBe('removing');
    const hungDel = (await readFile(`${hangDel}.pids`, 'utf8')).trim().split(/\s+/).map(Number);
    await d.kill();
    await detaching;
    await rm(hangDel);
    await d.spawn();
    for (const pid of hungDel) expect(await waitFor(async () => !(await pidAlive(pid)), 5000), `pid ${pid}`).toBe(true);
    rec = await record(d, id);
    expect(rec.phase).toBe('ready');
    expect(rec.attachments.map((a) => a.ifName)).toEqual(['lo', 'eth0']);
    expect(await linkNames(ns)).toEqual(['eth0', 'lo']);
    expect(await allocs(slow.name)).toEqual([]);
    expect((await podNetworks(d).list(id)).networks.map((n) => n.interface)).toEqual(['eth0']);
    expect((await listDir(join(d.cacheDir, 'results'))).filter((f) => f.includes(slow.name))).toEqual([]);
  });
});

// Hot-plug through the engine's API, in-process, with real bridge, macvlan and host-local plugins
// in real namespaces: attach and detach on a ready pod, traffic on the new interfaces, every
// refusal, rollback of a failed ADD, a failed DEL kept and retried, recovery of an interrupted
// attach or detach, Stop tearing hot-plugged attachments down, and attach/detach racing Stop.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import type { DaemonConfig } from '../../src/cri/config.js';
import { Engine } from '../../src/engine/engine.js';
import { EngineError } from '../../src/engine/errors.js';
import { NetworkManager } from '../../src/engine/network-manager.js';
import { type SandboxRecord } from '../../src/engine/store.js';
import type { EngineObserver, SetupRequest } from '../../src/engine/types.js';
import { NetnsManager } from '../../src/netns/netns.js';
import type { DelegateCall } from '../../src/cnidoor/backend.js';
import { delegateAdd, delegateDel } from '../../src/cnidoor/delegate.js';
import { CNIDoorServer } from '../../src/cnidoor/server.js';
import { b64, http } from '../cnidoor/door.js';
import { RecordingBackend } from '../cnidoor/recording-backend.js';
import type { Result } from '../../src/cni/result.js';
import {
  Cleanup,
  createParentLink,
  hostLocalIpam,
  ipAddrsIn,
  linkExists,
  linkNames,
  nsExec,
  randomHex,
  shOk,
  tmpDir,
  uniqueSubnet,
  writeJSON,
  type Subnet,
} from '../helpers/env.js';
import { rejectionOf } from '../helpers/refusal.js';
import { engineTestConfig, startTestEngine } from '../helpers/engine.js';

const cleanup = new Cleanup();
const log = pino({ level: 'silent' });
const managers: NetworkManager[] = [];
const signal = (): AbortSignal => AbortSignal.timeout(60_000);
let root: string;
let cfg: DaemonConfig;
let dataDir: string;
let runtimeNetns: NetnsManager;
let parent: string;
const net: Record<'cluster' | 'br' | 'mv' | 'flaky' | 'static', { name: string; subnet: Subnet }> = {} as never;
let addMarker: string;
let delMarker: string;
const outcomes: string[] = [];

async function newEngine(): Promise<Engine> {
  const observer: EngineObserver = { hotplug: (op, door, outcome) => outcomes.push(`${op}/${door}/${outcome}`) };
  const { engine, networks } = await startTestEngine(cfg, log, observer);
  managers.push(networks);
  await engine.recover();
  return engine;
}

function nad(name: string, config: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name, namespace: 'shop' }, spec: { config: JSON.stringify(config) } };
}

beforeAll(async () => {
  root = cleanup.dir(await tmpDir('podnet-hotplug-'));
  dataDir = join(root, 'ipam');
  cfg = engineTestConfig(root);
  await mkdir(cfg.cni.confDir, { recursive: true });
  await mkdir(cfg.attachmentsDir, { recursive: true });
  for (const k of ['cluster', 'br', 'mv', 'flaky', 'static'] as const) net[k] = { name: `hp${k}-${randomHex(4)}`, subnet: uniqueSubnet() };
  const bridge = (k: keyof typeof net, isGateway: boolean) => ({ type: 'bridge', bridge: cleanup.link(`pn${randomHex(6)}`), isGateway, ipMasq: false, ipam: hostLocalIpam(net[k].subnet, dataDir) });
  await writeJSON(join(cfg.cni.confDir, '10-cluster.conflist'), { cniVersion: '1.0.0', name: net.cluster.name, plugins: [bridge('cluster', false)] });
  parent = cleanup.link(`pnp${randomHex(5)}`);
  await createParentLink(parent);
  // Without the dummy driver the parent is a veth: its peer must be up too, or the macvlans have no carrier.
  if (await linkExists(undefined, `${parent}p`)) await shOk('ip', ['link', 'set', `${parent}p`, 'up']);
  addMarker = join(root, 'refuse-add');
  delMarker = join(root, 'refuse-del');
  await writeJSON(join(cfg.attachmentsDir, 'nads.json'), {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      nad('storage', { cniVersion: '1.0.0', name: net.br.name, plugins: [bridge('br', true)] }),
      nad('fast', { cniVersion: '1.0.0', name: net.mv.name, type: 'macvlan', master: parent, mode: 'bridge', ipam: hostLocalIpam(net.mv.subnet, dataDir) }),
      nad('flaky', { cniVersion: '1.0.0', name: net.flaky.name, plugins: [bridge('flaky', false), { type: 'e2e-passthrough', failAddIfExists: addMarker, failDelIfExists: delMarker }] }),
      nad('pinned', {
        cniVersion: '1.0.0',
        name: net.static.name,
        plugins: [{ type: 'bridge', bridge: cleanup.link(`pn${randomHex(6)}`), isGateway: false, ipam: { type: 'static' }, capabilities: { ips: true } }],
      }),
    ],
  });
  runtimeNetns = new NetnsManager(join(root, 'runtime-netns'));
  cleanup.push(async () => expect(await new NetnsManager(cfg.netnsDir).list()).toEqual([]), 'no engine namespace left');
});

afterAll(async () => {
  for (const m of managers) m.stop();
  expect(await cleanup.run()).toEqual([]);
  expect(await runtimeNetns.list()).toEqual([]);
});

async function runtimeNamespace(): Promise<string> {
  const ns = await runtimeNetns.create();
  cleanup.push(() => runtimeNetns.remove(ns), `netns ${ns}`);
  return ns;
}

async function readyPod(engine: Engine, over: Partial<SetupRequest> = {}): Promise<{ id: string; ns: string }> {
  const ns = await runtimeNamespace();
  const id = `pod${randomHex(16)}`;
  await engine.setUp(
    { id, door: 'cni', pod: { namespace: 'shop', name: `web-${randomHex(4)}`, uid: randomHex(8) }, netns: { owner: 'runtime', path: ns }, networks: { runtimeHandler: '' }, loopback: true, ...over },
    signal(),
  );
  cleanup.push(() => engine.tearDown(id, { forget: true }), `teardown ${id}`);
  return { id, ns };
}

/** host-local's allocations of a network. */
async function allocs(name: string): Promise<string[]> {
  return (await readdir(join(dataDir, name)).catch(() => [] as string[])).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
}

async function cacheOf(id: string): Promise<string[]> {
  return (await readdir(join(cfg.cni.cacheDir, 'results')).catch(() => [] as string[])).filter((f) => f.includes(id));
}

const engineError = (p: Promise<unknown>): Promise<EngineError> => rejectionOf(p, EngineError);

function onDisk(id: string): Promise<SandboxRecord> {
  return readFile(join(cfg.stateDir, 'sandboxes', `${id}.json`), 'utf8').then((t) => JSON.parse(t) as SandboxRecord);
}

describe('attach and detach on a ready pod', () => {
  it('a bridge and a macvlan network: traffic on both, then detached, the IPs released and the interfaces gone', async () => {
    const engine = await newEngine();
    const a = await readyPod(engine);
    const b = await readyPod(engine);
    const br = await engine.attach(a.id, { element: { name: 'storage' } }, signal());
    expect(br.status).toMatchObject({ name: 'shop/storage', interface: 'net1', default: false });
    expect(br.status.ips[0].startsWith(`${net.br.subnet.prefix}.`)).toBe(true);
    expect(br.result.ips![0].address).toBe(`${br.status.ips[0]}/24`);
    const mvA = await engine.attach(a.id, { element: { name: 'fast', interface: 'fast0' } }, signal());
    const mvB = await engine.attach(b.id, { element: { name: 'fast', namespace: 'shop' } }, signal());
    expect(mvA.status.interface).toBe('fast0');
    expect(mvB.status.interface).toBe('net1');
    // The record and the namespace agree.
    expect((await ipAddrsIn(a.ns, 'net1')).map((x) => x.cidr)).toContain(`${br.status.ips[0]}/24`);
    expect((await ipAddrsIn(a.ns, 'fast0')).map((x) => x.cidr)).toContain(`${mvA.status.ips[0]}/24`);
    expect(engine.listNetworks(a.id).map((e) => e.interface)).toEqual(['eth0', 'net1', 'fast0']);
    expect((await onDisk(a.id)).attachments.map((x) => [x.ifName, x.phase])).toEqual([['lo', undefined], ['eth0', undefined], ['net1', 'ready'], ['fast0', 'ready']]);
    // Traffic: the bridge's gateway on the host, and pod to pod over the macvlan parent.
    const pingGw = await nsExec(a.ns, 'ping', ['-c', '1', '-W', '2', '-I', 'net1', net.br.subnet.gateway]);
    expect(pingGw.exitCode, pingGw.stderr + pingGw.stdout).toBe(0);
    const pingPod = await nsExec(a.ns, 'ping', ['-c', '1', '-W', '2', '-I', 'fast0', mvB.status.ips[0]]);
    expect(pingPod.exitCode, pingPod.stderr + pingPod.stdout).toBe(0);
    expect(await allocs(net.mv.name)).toHaveLength(2);
    // Detach: gone from the namespace, host-local and the record.
    await engine.detach(a.id, 'net1', signal());
    await engine.detach(a.id, 'fast0', signal());
    await engine.detach(b.id, 'net1', signal());
    expect(await linkNames(a.ns)).toEqual(['eth0', 'lo']);
    expect(await linkNames(b.ns)).toEqual(['eth0', 'lo']);
    expect(await allocs(net.br.name)).toEqual([]);
    expect(await allocs(net.mv.name)).toEqual([]);
    expect((await cacheOf(a.id)).sort()).toEqual([`${net.cluster.name}-${a.id}-eth0`, `cni-loopback-${a.id}-lo`].sort());
    expect(engine.listNetworks(a.id).map((e) => e.interface)).toEqual(['eth0']);
    expect((await onDisk(a.id)).attachments.map((x) => x.ifName)).toEqual(['lo', 'eth0']);
    expect(engine.get(a.id)!.phase).toBe('ready');
    expect(outcomes).toEqual(expect.arrayContaining(['attach/cni/ok', 'detach/cni/ok']));
  });

  it('names: the next free netN, a taken name is already-exists, the same network again answers the same entry', async () => {
    const engine = await newEngine();
    const p = await readyPod(engine);
    const first = await engine.attach(p.id, { element: { name: 'storage' } }, signal());
    const again = await engine.attach(p.id, { element: { name: 'storage', interface: 'net1' } }, signal());
    expect(again.status).toEqual(first.status);
    expect(await allocs(net.br.name)).toHaveLength(1);
    const taken = await engineError(engine.attach(p.id, { element: { name: 'fast', interface: 'net1' } }, signal()));
    expect(taken.kind).toBe('already-exists');
    expect(taken.message).toContain('net1');
    expect((await engineError(engine.attach(p.id, { element: { name: 'fast', interface: 'eth0' } }, signal()))).kind).toBe('already-exists');
    const second = await engine.attach(p.id, { element: { name: 'fast' } }, signal());
    expect(second.status.interface).toBe('net2');
    await engine.detach(p.id, 'net1', signal());
    // net1 is free again once its holder is gone.
    expect((await engine.attach(p.id, { element: { name: 'storage' } }, signal())).status.interface).toBe('net1');
    await engine.tearDown(p.id, { forget: true });
    expect(await allocs(net.br.name)).toEqual([]);
    expect(await allocs(net.mv.name)).toEqual([]);
  });

  it('refusals, each before anything runs: unknown NAD, bad element, missing capability, unknown pod, not ready, the cluster network', async () => {
    const engine = await newEngine();
    const p = await readyPod(engine);
    const before = JSON.stringify(await onDisk(p.id));
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: 'nope' }, 'no NetworkAttachmentDefinition shop/nope'],
      [{ name: 'storage', mac: 'zz' }, '"mac"'],
      [{ name: 'storage', interface: 'a/b' }, 'interface'],
      [{ name: 'storage', ips: ['10.1.1.1/24'] }, '"ips" capability'],
      [{ name: 'storage', portMappings: [{ hostPort: 0, containerPort: 80 }] }, 'portMappings[0].hostPort'],
      [{ name: 'Bad_Name' }, 'DNS-1123'],
      [{ name: 'storage', 'cni-args': { 'a;b': 'x' } }, 'cni-args'],
      [{ name: 'storage', timeout: 'forever' }, '"timeout"'],
    ];
    for (const [element, want] of cases) {
      const e = await engineError(engine.attach(p.id, { element: element as never }, signal()));
      expect(e.kind, JSON.stringify(element)).toBe('invalid-request');
      expect(e.message).toContain(want);
      // The element's own checks say where it came from; NAD and capability checks name the network.
      if (!want.includes('NetworkAttachmentDefinition') && !want.includes('capability')) expect(e.message).toContain(`network to attach to sandbox ${p.id}`);
    }
    expect(JSON.stringify(await onDisk(p.id))).toBe(before);
    expect(await linkNames(p.ns)).toEqual(['eth0', 'lo']);
    expect((await engineError(engine.attach('pod-unknown', { element: { name: 'storage' } }, signal()))).kind).toBe('not-found');
    expect((await engineError(engine.detach('pod-unknown', 'net1', signal()))).kind).toBe('not-found');
    const eth0 = await engineError(engine.detach(p.id, 'eth0', signal()));
    expect(eth0.kind).toBe('failed-precondition');
    expect(eth0.message).toContain('cluster network');
    expect((await engineError(engine.detach(p.id, 'net7', signal()))).kind).toBe('not-found');
    expect((await engineError(engine.detach(p.id, '../x', signal()))).kind).toBe('invalid-request');
    await engine.tearDown(p.id);
    const stopped = await engineError(engine.attach(p.id, { element: { name: 'storage' } }, signal()));
    expect(stopped.kind).toBe('failed-precondition');
    expect(stopped.message).toContain('notready');
    expect((await engineError(engine.detach(p.id, 'net1', signal()))).kind).toBe('failed-precondition');
    expect(outcomes).toEqual(expect.arrayContaining(['attach/cni/invalid-request', 'attach/cni/failed-precondition']));
  });

  it('a requested IP with a network that declares the capability; an interface the pod got at creation can be detached', async () => {
    const engine = await newEngine();
    const ip = `${net.static.subnet.prefix}.77`;
    const p = await readyPod(engine, { annotations: { 'k8s.v1.cni.cncf.io/networks': 'storage@stor0' } });
    const got = await engine.attach(p.id, { element: { name: 'pinned', ips: [`${ip}/24`] } }, signal());
    expect(got.status.ips).toEqual([ip]);
    expect((await ipAddrsIn(p.ns, got.status.interface)).map((x) => x.cidr)).toContain(`${ip}/24`);
    await engine.detach(p.id, 'stor0', signal());
    await engine.detach(p.id, got.status.interface, signal());
    expect(await linkNames(p.ns)).toEqual(['eth0', 'lo']);
    expect(await allocs(net.br.name)).toEqual([]);
  });

  it('the CNI door form: the network given by its config bytes, not a NAD', async () => {
    const engine = await newEngine();
    const p = await readyPod(engine);
    const config = Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: net.mv.name, type: 'macvlan', master: parent, mode: 'bridge', ipam: hostLocalIpam(net.mv.subnet, dataDir) }));
    const got = await engine.attach(p.id, { config, element: { interface: 'dyn0' } }, signal());
    expect(got.status).toMatchObject({ name: `shop/${net.mv.name}`, interface: 'dyn0' });
    expect(await linkNames(p.ns)).toEqual(['dyn0', 'eth0', 'lo']);
    expect((await engineError(engine.attach(p.id, { config, element: { name: 'x' } }, signal()))).message).toContain('"name" is not allowed');
    expect((await engineError(engine.attach(p.id, { config: Buffer.from('{'), element: {} }, signal()))).kind).toBe('invalid-request');
    await engine.detach(p.id, 'dyn0', signal());
    expect(await allocs(net.mv.name)).toEqual([]);
  });
});

describe('failures', () => {
  it('a failed ADD is rolled back and leaves the pod exactly as before', async () => {
    const engine = await newEngine();
    const p = await readyPod(engine);
    const before = JSON.stringify(await onDisk(p.id));
    await writeFile(addMarker, '');
    try {
      const e = await engineError(engine.attach(p.id, { element: { name: 'flaky' } }, signal()));
      expect(e.kind).toBe('plugin-failed');
      expect(e.message).toContain('net1');
    } finally {
      await rm(addMarker, { force: true });
    }
    expect(JSON.stringify(await onDisk(p.id))).toBe(before);
    expect(await linkNames(p.ns)).toEqual(['eth0', 'lo']);
    expect(await allocs(net.flaky.name)).toEqual([]);
    expect(outcomes).toContain('attach/cni/plugin-failed');
  });

  it('a failed DEL leaves the attachment removing with the error; GC, then Stop, retry it', async () => {
    const engine = await newEngine();
    for (const retry of ['gc', 'stop'] as const) {
      const p = await readyPod(engine);
      await engine.attach(p.id, { element: { name: 'flaky' } }, signal());
      await writeFile(delMarker, '');
      const e = await engineError(engine.detach(p.id, 'net1', signal()));
      expect(e.message).toContain('retried');
      const kept = (await onDisk(p.id)).attachments.find((a) => a.ifName === 'net1')!;
      expect(kept.phase).toBe('removing');
      expect(kept.error).toContain('marker');
      expect(engine.get(p.id)!.phase).toBe('ready');
      expect(engine.listNetworks(p.id).map((x) => x.interface)).toEqual(['eth0']);
      // Still failing: still kept.
      await engine.gc();
      expect((await onDisk(p.id)).attachments.map((a) => a.ifName)).toContain('net1');
      await rm(delMarker);
      if (retry === 'gc') await engine.gc();
      else await engine.tearDown(p.id);
      expect((await onDisk(p.id)).attachments.map((a) => a.ifName)).not.toContain('net1');
      expect(await allocs(net.flaky.name)).toEqual([]);
      expect(await cacheOf(p.id)).toEqual(retry === 'gc' ? expect.arrayContaining([`${net.cluster.name}-${p.id}-eth0`]) : []);
    }
  });

  it('Stop and Remove tear hot-plugged attachments down with the rest, from the recorded config', async () => {
    const engine = await newEngine();
    const p = await readyPod(engine);
    await engine.attach(p.id, { element: { name: 'storage' } }, signal());
    await engine.attach(p.id, { element: { name: 'fast' } }, signal());
    await engine.tearDown(p.id, { forget: true });
    expect(engine.get(p.id)).toBeUndefined();
    expect(await linkNames(p.ns)).toEqual(['lo']);
    expect(await allocs(net.br.name)).toEqual([]);
    expect(await allocs(net.mv.name)).toEqual([]);
    expect(await cacheOf(p.id)).toEqual([]);
  });

  for (const phase of ['adding', 'removing'] as const) {
    it(`recovery after a crash with an attachment ${phase}: undone or finished, the pod stays ready`, async () => {
      const first = await newEngine();
      const p = await readyPod(first);
      await first.attach(p.id, { element: { name: 'storage' } }, signal());
      // The record as a crash would leave it: the attachment's ADD (or DEL) ran, its end was never written.
      const rec = await onDisk(p.id);
      rec.attachments.find((a) => a.ifName === 'net1')!.phase = phase;
      if (phase === 'removing') rec.results = rec.results.filter((r) => r.ifName !== 'net1');
      await writeJSON(join(cfg.stateDir, 'sandboxes', `${p.id}.json`), rec);
      const engine = await newEngine();
      expect(engine.get(p.id)!.phase).toBe('ready');
      expect((await onDisk(p.id)).attachments.map((a) => a.ifName)).toEqual(['lo', 'eth0']);
      expect(await linkNames(p.ns)).toEqual(['eth0', 'lo']);
      expect(await allocs(net.br.name)).toEqual([]);
      await engine.tearDown(p.id, { forget: true });
    });
  }
});

describe('racing Stop', () => {
  it('100 attach/detach cycles while the pod is stopped: no leak, no orphan interface', async () => {
    const engine = await newEngine();
    const p = await readyPod(engine);
    let cycles = 0;
    const refused: string[] = [];
    const loop = (async () => {
      for (let i = 0; i < 100; i++) {
        try {
          const r = await engine.attach(p.id, { element: { name: i % 2 ? 'fast' : 'storage' } }, signal());
          await engine.detach(p.id, r.status.interface, signal());
          cycles++;
        } catch (err) {
          refused.push((err as EngineError).kind);
        }
      }
    })();
    // Stop somewhere in the middle (after a few cycles), bounded by the loop itself.
    while (cycles < 5 && refused.length === 0) await new Promise((r) => setTimeout(r, 20));
    await engine.tearDown(p.id);
    await loop;
    expect(cycles + refused.length).toBe(100);
    expect(new Set(refused)).toEqual(new Set(refused.length ? ['failed-precondition'] : []));
    expect(await linkNames(p.ns)).toEqual(['lo']);
    expect(await allocs(net.br.name)).toEqual([]);
    expect(await allocs(net.mv.name)).toEqual([]);
    expect(await cacheOf(p.id)).toEqual([]);
    // Stopped: every attachment torn down, none left half-way (the record keeps what the pod had).
    const rec = await onDisk(p.id);
    expect(rec.phase).toBe('notready');
    expect(rec.lastError).toBeUndefined();
    expect(rec.attachments.filter((a) => a.phase === 'adding' || a.phase === 'removing')).toEqual([]);
    expect(await linkExists(undefined, parent)).toBe(true);
  });
});

describe('/delegate of the CNI door (multus-dynamic-networks-controller)', () => {
  it('ADD attaches the call\'s network with its interfaceAttributes, DEL detaches it; errors are CNI codes', async () => {
    const engine = await newEngine();
    const p = await readyPod(engine);
    // The door's protocol server with a backend whose delegate calls are ours.
    const backend = new (class extends RecordingBackend {
      override delegateAdd(call: DelegateCall, sig: AbortSignal): Promise<Result> {
        return delegateAdd(engine, call, sig);
      }
      override delegateDel(call: DelegateCall, sig: AbortSignal): Promise<void> {
        return delegateDel(engine, call, sig);
      }
    })();
    const server = new CNIDoorServer({ backend, log });
    const socket = join(root, `door-${randomHex(4)}.sock`);
    await server.listen(socket);
    cleanup.push(() => server.close(), 'close the CNI door');
    const env = (command: string, over: Record<string, string> = {}) => ({
      CNI_COMMAND: command,
      CNI_CONTAINERID: p.id,
      CNI_NETNS: p.ns,
      CNI_IFNAME: 'dyn1',
      CNI_ARGS: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_UID=u-1',
      ...over,
    });
    const macvlan = { cniVersion: '1.0.0', name: net.mv.name, type: 'macvlan', master: parent, mode: 'bridge', ipam: hostLocalIpam(net.mv.subnet, dataDir) };
    const r = await http(socket, 'POST', '/delegate', { env: env('ADD'), config: b64(macvlan), interfaceAttributes: { 'cni-args': { foo: 'bar' } } });
    expect(r.status, r.body).toBe(200);
    const result = (JSON.parse(r.body) as { Result: Result }).Result;
    expect(result.interfaces?.some((i) => i.name === 'dyn1')).toBe(true);
    expect(await linkNames(p.ns)).toEqual(['dyn1', 'eth0', 'lo']);
    expect(engine.listNetworks(p.id).map((e) => e.interface)).toEqual(['eth0', 'dyn1']);
    expect((await onDisk(p.id)).attachments.find((a) => a.ifName === 'dyn1')?.cniArgs).toEqual([['foo', 'bar']]);
    const codeOf = async (body: unknown) => (JSON.parse((await http(socket, 'POST', '/delegate', body)).body) as { code: number; msg: string });
    // A taken interface, a capability the config lacks, an unknown pod, another namespace.
    expect((await codeOf({ env: env('ADD'), config: b64(macvlan) })).code).toBe(11);
    expect(await codeOf({ env: env('ADD', { CNI_IFNAME: 'dyn2' }), config: b64(macvlan), interfaceAttributes: { mac: '02:00:00:00:00:09' } })).toMatchObject({ code: 7, msg: expect.stringContaining('"mac" capability') as unknown });
    expect((await codeOf({ env: env('ADD', { CNI_CONTAINERID: 'nope' }), config: b64(macvlan) })).code).toBe(3);
    expect((await codeOf({ env: env('ADD', { CNI_NETNS: '/var/run/netns/other' }), config: b64(macvlan) })).code).toBe(4);
    const del = await http(socket, 'POST', '/delegate', { env: env('DEL'), config: b64(macvlan) });
    expect(del.status, del.body).toBe(200);
    expect(await linkNames(p.ns)).toEqual(['eth0', 'lo']);
    expect(await allocs(net.mv.name)).toEqual([]);
    // DEL is idempotent, and never takes the cluster network.
    expect((await http(socket, 'POST', '/delegate', { env: env('DEL'), config: b64(macvlan) })).status).toBe(200);
    expect((await codeOf({ env: env('DEL', { CNI_IFNAME: 'eth0' }), config: b64(macvlan) })).code).toBe(11);
    expect(engine.get(p.id)!.phase).toBe('ready');
  });
});

// The CNI door's engine backend, in-process, on the real engine with real bridge + host-local in
// namespaces the test made (as a container runtime would): ADD/CHECK/DEL/GC/STATUS as the door
// hands them over, the runtime's retries (a repeated ADD, DEL twice, DEL of an unknown id), a
// failing DEL that keeps the record, bad requests with their CNI codes; and multus-shim's wire
// shape (no resultVersion, the 0.3.1 stdin) through the real door server over its unix socket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Result } from '../../src/cni/result.js';
import type { AttachmentCall, DelegateCall, GCCall } from '../../src/cnidoor/backend.js';
import { EngineBackend } from '../../src/cnidoor/engine-backend.js';
import { CNIDoorError } from '../../src/cnidoor/errors.js';
import { CNIDoorServer } from '../../src/cnidoor/server.js';
import type { DaemonConfig } from '../../src/cri/config.js';
import { Engine } from '../../src/engine/engine.js';
import { NetworkManager } from '../../src/engine/network-manager.js';
import { NetnsManager } from '../../src/netns/netns.js';
import { Cleanup, hostLocalIpam, ipAddrsIn, pathExists, randomHex, tmpDir, uniqueSubnet, writeJSON, type Subnet } from '../helpers/env.js';
import { rejectionOf } from '../helpers/refusal.js';
import { engineTestConfig, startTestEngine } from '../helpers/engine.js';
import { b64, http } from './door.js';

const cleanup = new Cleanup();
const log = pino({ level: 'silent' });
let root: string;
let cfg: DaemonConfig;
let dataDir: string;
let engine: Engine;
let backend: EngineBackend;
let runtimeNetns: NetnsManager;
let networks: NetworkManager;
const subnet: Subnet = uniqueSubnet();
const blueSubnet: Subnet = uniqueSubnet();
const defaultName = `door-${randomHex(6)}`;
const blueName = `blue-${randomHex(6)}`;
let delFailName: string;
let delMarker: string;
let ready = true;

function bridgeConflist(name: string, s: Subnet): Record<string, unknown> {
  return { cniVersion: '1.0.0', name, plugins: [{ type: 'bridge', bridge: cleanup.link(`pd${randomHex(6)}`), isGateway: true, ipMasq: false, ipam: hostLocalIpam(s, dataDir) }] };
}

beforeAll(async () => {
  root = cleanup.dir(await tmpDir('podnet-door-engine-'));
  dataDir = join(root, 'ipam');
  cfg = engineTestConfig(root, { maxConfNum: 1 });
  await mkdir(cfg.cni.confDir, { recursive: true });
  await writeJSON(join(cfg.cni.confDir, '10-default.conflist'), bridgeConflist(defaultName, subnet));
  // Another handler's network: a shim config's `network` selects it by name.
  const blueDir = join(root, 'conf-blue');
  await mkdir(blueDir);
  await writeJSON(join(blueDir, '10-blue.conflist'), bridgeConflist(blueName, blueSubnet));
  const delFailDir = join(root, 'conf-delfail');
  await mkdir(delFailDir);
  delMarker = join(root, 'refuse-del');
  delFailName = `delfail-${randomHex(4)}`;
  const chain = bridgeConflist(delFailName, uniqueSubnet()) as { plugins: unknown[] };
  chain.plugins.push({ type: 'e2e-passthrough', failDelIfExists: delMarker });
  await writeJSON(join(delFailDir, '10-delfail.conflist'), chain);
  cfg.runtimes = { delfail: { cniConfDir: delFailDir }, blue: { cniConfDir: blueDir } };
  ({ engine, networks } = await startTestEngine(cfg, log));
  const netns = new NetnsManager(cfg.netnsDir);
  await engine.recover();
  backend = new EngineBackend({ engine, recovered: () => Promise.resolve(), ready: () => ready, netnsExists: (p) => netns.exists(p), log });
  runtimeNetns = new NetnsManager(join(root, 'runtime-netns'));
});

afterAll(async () => {
  networks.stop();
  expect(await cleanup.run()).toEqual([]);
  expect(await runtimeNetns.list()).toEqual([]);
});

/** A namespace of the "runtime", removed by it at cleanup (after the pods on it are gone). */
async function runtimeNamespace(): Promise<string> {
  const ns = await runtimeNetns.create();
  cleanup.push(() => runtimeNetns.remove(ns), `netns ${ns}`);
  return ns;
}

function call(command: AttachmentCall['command'], netns: string, id: string, over: Partial<AttachmentCall> = {}): AttachmentCall {
  const pod = { namespace: 'shop', name: `web-${id.slice(-4)}`, uid: `uid-${id.slice(-6)}`, infraContainerID: id };
  return {
    command,
    containerID: id,
    netns,
    ifName: 'eth0',
    args: new Map([['IgnoreUnknown', '1'], ['K8S_POD_NAMESPACE', pod.namespace], ['K8S_POD_NAME', pod.name], ['K8S_POD_INFRA_CONTAINER_ID', id], ['K8S_POD_UID', pod.uid]]),
    pod,
    runtimeConfig: { portMappings: [], bandwidth: undefined, dns: undefined, podAnnotations: new Map(), cgroupPath: '' },
    prevResult: undefined,
    interfaceAttributes: undefined,
    path: ['/opt/cni/bin'],
    cniVersion: '1.0.0',
    configName: 'podnet',
    network: undefined,
    runtimeHandler: undefined,
    config: Buffer.from('{}'),
    ...over,
  };
}

const newId = (): string => `c${randomHex(20)}`;
const signal = (): AbortSignal => AbortSignal.timeout(60_000);

/** host-local's allocations of a network. */
async function allocations(network: string): Promise<string[]> {
  return (await readdir(join(dataDir, network)).catch(() => [] as string[])).filter((f) => /^[0-9a-f.:]+$/.test(f) && f.includes('.'));
}

async function cacheEntriesOf(id: string): Promise<string[]> {
  return (await readdir(join(cfg.cni.cacheDir, 'results')).catch(() => [] as string[])).filter((f) => f.includes(id));
}

/** The CNI error a promise fails with. */
const cniError = (p: Promise<unknown>): Promise<CNIDoorError> => rejectionOf(p, CNIDoorError);

const ipOf = (r: Result): string => r.ips![0].address.split('/')[0];

describe('EngineBackend on the real engine', () => {
  it('ADD → the cluster network in the runtime namespace; repeated ADD answers the record; CHECK; DEL twice releases all, keeps the namespace', async () => {
    const ns = await runtimeNamespace();
    const id = newId();
    const r = await backend.add(call('ADD', ns, id), signal());
    expect(r.cniVersion).toBe('1.0.0');
    const ip = ipOf(r);
    expect(ip.startsWith(`${subnet.prefix}.`), ip).toBe(true);
    expect((await ipAddrsIn(ns, 'eth0')).map((a) => a.local)).toContain(ip);
    // The runtime runs loopback itself on this door: the record holds the cluster network only.
    const rec = engine.get(id)!;
    expect(rec).toMatchObject({ door: 'cni', netnsOwner: 'runtime', netnsPath: ns, phase: 'ready', clusterIfName: 'eth0' });
    expect(rec.attachments.map((a) => a.network)).toEqual([defaultName]);
    expect(await allocations(defaultName)).toEqual([ip]);

    // The runtime's retry of an ADD whose answer it lost: the same result, nothing allocated twice.
    expect(await backend.add(call('ADD', ns, id), signal())).toEqual(r);
    expect(await allocations(defaultName)).toEqual([ip]);

    await backend.check(call('CHECK', ns, id), signal());

    await backend.del(call('DEL', ns, id));
    expect(engine.get(id)).toBeUndefined();
    expect(await allocations(defaultName)).toEqual([]);
    expect(await cacheEntriesOf(id)).toEqual([]);
    // containerd's second DEL (RemovePodSandbox) comes without a namespace: fine.
    await backend.del(call('DEL', '', id, { pod: undefined }));
    // The runtime's namespace is the runtime's: still there, now empty of our interface.
    expect(await pathExists(ns)).toBe(true);
    expect(await ipAddrsIn(ns, 'eth0')).toEqual([]);
    expect((await cniError(backend.check(call('CHECK', ns, id), signal()))).code).toBe(3);
  });

  it('DEL of an id podnet never saw succeeds; DEL with only the record (netns gone) releases the IP', async () => {
    await backend.del(call('DEL', '', newId(), { pod: undefined }));
    const ns = await runtimeNetns.create();
    const id = newId();
    const ip = ipOf(await backend.add(call('ADD', ns, id), signal()));
    expect(await allocations(defaultName)).toContain(ip);
    // The runtime removed its namespace before the DEL (RemovePodSandbox after a crash).
    await runtimeNetns.remove(ns);
    await backend.del(call('DEL', '', id, { pod: undefined }));
    expect(await allocations(defaultName)).not.toContain(ip);
    expect(engine.get(id)).toBeUndefined();
  });

  it('a failing DEL is an error the runtime retries, the record kept; the retry releases everything', async () => {
    const ns = await runtimeNamespace();
    const id = newId();
    await backend.add(call('ADD', ns, id, { runtimeHandler: 'delfail' }), signal());
    await writeFile(delMarker, '');
    try {
      const e = await cniError(backend.del(call('DEL', ns, id)));
      // The plugin's own code (e2e-passthrough answers 11), its message carried.
      expect(e.code).toBe(11);
      expect(e.msg).toContain('DEL refused while the marker file exists');
      expect(engine.get(id)).toMatchObject({ phase: 'notready', lastError: expect.stringContaining('marker') });
    } finally {
      await rm(delMarker, { force: true });
    }
    await backend.del(call('DEL', ns, id));
    expect(engine.get(id)).toBeUndefined();
    expect(await allocations(delFailName)).toEqual([]);
  });

  it('bad requests get their CNI codes, and nothing is left of them', async () => {
    const ns = await runtimeNamespace();
    const id = newId();
    // Environment (4): no namespace, a path that is no namespace, no pod uid.
    expect((await cniError(backend.add(call('ADD', '', id), signal()))).code).toBe(4);
    const notNs = join(root, 'not-a-netns');
    await writeFile(notNs, '');
    expect((await cniError(backend.add(call('ADD', notNs, id), signal()))).code).toBe(4);
    const noUid = call('ADD', ns, id);
    expect((await cniError(backend.add({ ...noUid, pod: { ...noUid.pod!, uid: '' } }, signal()))).code).toBe(4);
    // Network config (7): a networks annotation that is not one.
    const annotated = call('ADD', ns, id);
    annotated.runtimeConfig = { ...annotated.runtimeConfig, podAnnotations: new Map([['k8s.v1.cni.cncf.io/networks', '[{"name": ']]) };
    const bad = await cniError(backend.add(annotated, signal()));
    expect(bad.code).toBe(7);
    expect(bad.msg).toContain('k8s.v1.cni.cncf.io/networks');
    // A network no conf dir has: not ready (11: the runtime retries; the conf dir may get it).
    const missing = await cniError(backend.add(call('ADD', ns, id, { network: 'no-such-network' }), signal()));
    expect(missing.code).toBe(11);
    expect(missing.msg).toContain('no-such-network');
    expect(engine.get(id)).toBeUndefined();
    expect(await cacheEntriesOf(id)).toEqual([]);

    // The same id on another namespace while set up: refused (4), the first pod untouched.
    await backend.add(call('ADD', ns, id), signal());
    const other = await runtimeNamespace();
    const e = await cniError(backend.add(call('ADD', other, id), signal()));
    expect(e.code).toBe(4);
    expect(e.msg).toContain('another network namespace');
    expect(engine.get(id)).toMatchObject({ phase: 'ready', netnsPath: ns });
    await backend.del(call('DEL', ns, id));

    // /delegate reaches the engine's hot-plug (test/engine/hotplug.test.ts has the rest): a pod
    // podnet does not know is code 3 on ADD, and its DEL is done already.
    const d: DelegateCall = { command: 'ADD', containerID: id, netns: ns, ifName: 'net1', args: new Map(), pod: { namespace: 'shop', name: 'x', uid: 'u', infraContainerID: id }, networkName: 'n', cniVersion: '1.0.0', config: Buffer.from('{}'), interfaceAttributes: undefined };
    const h = await cniError(backend.delegateAdd(d, signal()));
    expect(h.code).toBe(3);
    expect(h.msg).toContain(id);
    await backend.delegateDel({ ...d, command: 'DEL' }, signal());
  });

  it('GC releases this network\'s pods the runtime does not list, and nothing else; STATUS answers readiness', async () => {
    const ns = [await runtimeNamespace(), await runtimeNamespace(), await runtimeNamespace()];
    const [keep, drop, blue] = [newId(), newId(), newId()];
    await backend.add(call('ADD', ns[0], keep), signal());
    const dropIP = ipOf(await backend.add(call('ADD', ns[1], drop), signal()));
    const blueIP = ipOf(await backend.add(call('ADD', ns[2], blue, { network: blueName }), signal()));
    expect(blueIP.startsWith(`${blueSubnet.prefix}.`), blueIP).toBe(true);
    const gc: GCCall = { path: [], cniVersion: '1.1.0', configName: 'podnet', network: undefined, runtimeHandler: undefined, config: Buffer.from('{}'), validAttachments: [{ containerID: keep, ifName: 'eth0' }] };
    await backend.gc(gc);
    expect(engine.get(drop)).toBeUndefined();
    expect(await allocations(defaultName)).not.toContain(dropIP);
    expect(engine.get(keep)?.phase).toBe('ready');
    // The blue pod came through another shim config: that network's GC decides about it.
    expect(engine.get(blue)?.phase).toBe('ready');
    await backend.gc({ ...gc, network: blueName, validAttachments: [] });
    expect(engine.get(blue)).toBeUndefined();
    expect(await allocations(blueName)).toEqual([]);
    await backend.del(call('DEL', ns[0], keep));

    const status = { path: [], cniVersion: '1.1.0', configName: 'podnet', network: undefined, runtimeHandler: undefined, config: Buffer.from('{}') };
    await backend.status(status);
    await backend.status({ ...status, network: blueName });
    const absent = await cniError(backend.status({ ...status, network: 'no-such-network' }));
    expect(absent.code).toBe(50);
    expect((await cniError(backend.status({ ...status, runtimeHandler: 'undeclared' }))).code).toBe(50);
    ready = false;
    try {
      expect((await cniError(backend.status(status))).code).toBe(50);
      expect(backend.ready()).toBe(false);
    } finally {
      ready = true;
    }
  });
});

describe('multus-shim semantics over the wire', () => {
  it('readyz "null", ADD with a 0.3.1 stdin and no resultVersion → a 1.0.0 Result; DEL without netns twice → 200', async () => {
    const dir = cleanup.dir(await tmpDir('podnet-door-multus-'));
    await mkdir(join(dir, 'multus'));
    const server = new CNIDoorServer({ backend, log });
    const socket = join(dir, 'multus', 'multus.sock');
    await server.listen(socket);
    cleanup.push(() => server.close(), 'close the door');
    expect((await http(socket, 'POST', '/readyz', 'null')).status).toBe(200);
    const ns = await runtimeNamespace();
    const id = newId();
    // What multus-shim sends: its own conflist's stdin, the whole environment, no resultVersion.
    const stdin = { cniVersion: '0.3.1', name: 'multus-cni-network', type: 'multus-shim', socketDir: join(dir, 'multus'), logLevel: 'verbose', logToStderr: true };
    const env = (command: string, netns: string): Record<string, string> => ({
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: netns,
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/opt/cni/bin',
      // containerd's order, not the conventional one.
      CNI_ARGS: `K8S_POD_INFRA_CONTAINER_ID=${id};K8S_POD_UID=uid-m;IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=multus-0`,
      PATH: '/usr/sbin:/usr/bin',
      HOME: '/root',
    });
    const add = await http(socket, 'POST', '/cni', { env: env('ADD', ns), config: b64(stdin) });
    expect(add.status, add.body).toBe(200);
    const result = (JSON.parse(add.body) as { Result: Result }).Result;
    expect(result.cniVersion).toBe('1.0.0');
    const ip = ipOf(result);
    expect((await ipAddrsIn(ns, 'eth0')).map((a) => a.local)).toContain(ip);
    expect(engine.get(id)).toMatchObject({ door: 'cni', metadata: { namespace: 'shop', name: 'multus-0', uid: 'uid-m' } });
    for (let i = 0; i < 2; i++) {
      const del = await http(socket, 'POST', '/cni', { env: env('DEL', ''), config: b64(stdin) });
      expect(del).toMatchObject({ status: 200, body: '' });
    }
    expect(engine.get(id)).toBeUndefined();
    expect(await allocations(defaultName)).not.toContain(ip);
    // A bad request is the CNI error JSON with its code, as multus-shim relays it.
    const bad = await http(socket, 'POST', '/cni', { env: { ...env('ADD', ns), CNI_IFNAME: 'a/b' }, config: b64(stdin) });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ code: 4 });
  });
});

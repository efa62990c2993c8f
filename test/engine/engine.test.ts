// The pod-network engine's API, in-process, with real bridge + host-local in real namespaces: a
// namespace the "runtime" made (the test, as `ip netns add` would) is set up, checked and torn
// down but never removed; teardown is idempotent without a namespace; a record written before the
// engine existed (version 1) loads and tears down; a door's GC touches only its own pods.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { summarize, type Result, type SetupResult } from '../../src/cni/index.js';
import type { DaemonConfig } from '../../src/cri/config.js';
import { actionable, findLeaks, fixLeaks } from '../../src/cmd/doctor.js';
import { Engine } from '../../src/engine/engine.js';
import { EngineError } from '../../src/engine/errors.js';
import { NetworkManager } from '../../src/engine/network-manager.js';
import { NetnsLedger, SandboxStore, type SandboxRecord } from '../../src/engine/store.js';
import type { SetupRequest } from '../../src/engine/types.js';
import { NetnsManager } from '../../src/netns/netns.js';
import {
  Cleanup,
  hostLocalIpam,
  ipAddrsIn,
  linkExists,
  linkInfo,
  pathExists,
  randomHex,
  tmpDir,
  uniqueSubnet,
  writeJSON,
  type Subnet,
} from '../helpers/env.js';
import { rejectionOf } from '../helpers/refusal.js';
import { engineTestConfig, startTestEngine } from '../helpers/engine.js';

const cleanup = new Cleanup();
const log = pino({ level: 'silent' });
let root: string;
let cfg: DaemonConfig;
let dataDir: string;
/** The container runtime's namespaces (made by the test, as `ip netns add` would). */
let runtimeNetns: NetnsManager;
const subnets: Subnet[] = [];
const names: string[] = [];
const managers: NetworkManager[] = [];
/** The network of the failing handler whose ADD succeeds. */
let goodName: string;
let delFailName: string;
let delMarker: string;
/** Where the `together` handler's DELs meet. */
let rendezvous: string;
/** What the `recorded` handler's plugin was sent, a line per call. */
let recordFile: string;

function bridgeConflist(name: string, subnet: Subnet): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name,
    plugins: [{ type: 'bridge', bridge: cleanup.link(`pn${randomHex(6)}`), isGateway: false, ipMasq: false, ipam: hostLocalIpam(subnet, dataDir) }],
  };
}

/** A fresh engine over the test's state dir (as after a daemon restart), networks loaded. */
async function newEngine(over: Partial<DaemonConfig['cni']> = {}): Promise<Engine> {
  const { engine, networks } = await startTestEngine({ ...cfg, cni: { ...cfg.cni, ...over } }, log);
  managers.push(networks);
  return engine;
}

beforeAll(async () => {
  root = cleanup.dir(await tmpDir('podnet-engine-'));
  dataDir = join(root, 'ipam');
  cfg = engineTestConfig(root, { maxConfNum: 2 });
  await mkdir(cfg.cni.confDir, { recursive: true });
  for (let i = 0; i < 2; i++) {
    subnets.push(uniqueSubnet());
    names.push(`en${i}-${randomHex(6)}`);
    await writeJSON(join(cfg.cni.confDir, `${10 + i}-net.conflist`), bridgeConflist(names[i], subnets[i]));
  }
  // A third network that must not be joined with max_conf_num 2: if it were, every ADD would fail.
  await writeJSON(join(cfg.cni.confDir, '30-third.conflist'), { cniVersion: '1.0.0', name: 'third', plugins: [{ type: 'fail-json' }] });
  // A handler whose second network fails ADD (its DEL succeeds): for the rollback test.
  const failDir = join(root, 'conf-fail');
  await mkdir(failDir);
  goodName = `good-${randomHex(4)}`;
  await writeJSON(join(failDir, '10-good.conflist'), bridgeConflist(goodName, uniqueSubnet()));
  await writeJSON(join(failDir, '20-bad.conflist'), { cniVersion: '1.0.0', name: `bad-${randomHex(4)}`, plugins: [{ type: 'fail-json', passDel: true }] });
  // A handler whose chain's DEL fails while a marker file exists: for the kept-record test.
  const delFailDir = join(root, 'conf-delfail');
  await mkdir(delFailDir);
  delMarker = join(root, 'refuse-del');
  delFailName = `delfail-${randomHex(4)}`;
  const chain = bridgeConflist(delFailName, uniqueSubnet()) as { plugins: unknown[] };
  chain.plugins.push({ type: 'e2e-passthrough', failDelIfExists: delMarker });
  await writeJSON(join(delFailDir, '10-delfail.conflist'), chain);
  // A handler whose two networks' DELs each wait for the other's: they pass only if run together.
  const togetherDir = join(root, 'conf-together');
  await mkdir(togetherDir);
  rendezvous = join(root, 'rendezvous');
  for (let i = 0; i < 2; i++) {
    const list = bridgeConflist(`together${i}-${randomHex(4)}`, uniqueSubnet()) as { plugins: unknown[] };
    list.plugins.push({ type: 'e2e-passthrough', delRendezvous: rendezvous, delRendezvousSeconds: 5 });
    await writeJSON(join(togetherDir, `${10 + i}-together.conflist`), list);
  }
  // A handler whose one plugin records every stdin it gets: for what DEL is sent.
  const recordedDir = join(root, 'conf-recorded');
  await mkdir(recordedDir);
  recordFile = join(root, 'recorded.log');
  await writeJSON(join(recordedDir, '10-recorded.conflist'), { cniVersion: '1.1.0', name: `recorded-${randomHex(4)}`, plugins: [{ type: 'record-gc', recordFile }] });
  cfg.runtimes = {
    failing: { cniConfDir: failDir, cniMaxConfNum: 2 },
    delfail: { cniConfDir: delFailDir },
    together: { cniConfDir: togetherDir, cniMaxConfNum: 2 },
    recorded: { cniConfDir: recordedDir },
  };
  runtimeNetns = new NetnsManager(join(root, 'runtime-netns'));
  // Every namespace the engine made must be gone by the end, and the test's own ones are removed here.
  cleanup.push(async () => expect(await new NetnsManager(cfg.netnsDir).list()).toEqual([]), 'no engine namespace left');
});

afterAll(async () => {
  for (const m of managers) m.stop();
  const errors = await cleanup.run();
  expect(errors).toEqual([]);
  expect(await runtimeNetns.list()).toEqual([]);
});

/** A namespace of the runtime's, removed (by the "runtime") at cleanup. */
async function runtimeNamespace(mgr = runtimeNetns): Promise<string> {
  const ns = await mgr.create();
  cleanup.push(() => mgr.remove(ns), `netns ${ns}`);
  return ns;
}

function request(ns: string, over: Partial<SetupRequest> = {}): SetupRequest {
  const id = `pod${randomHex(16)}`;
  return {
    id,
    door: 'cni',
    pod: { namespace: 'shop', name: `web-${randomHex(4)}`, uid: `uid-${randomHex(4)}` },
    netns: { owner: 'runtime', path: ns },
    networks: { runtimeHandler: '' },
    loopback: true,
    ...over,
  };
}

/** host-local's allocations of network i (or of a network by name). */
function allocFiles(i: number | string): Promise<string[]> {
  return readdir(join(dataDir, typeof i === 'number' ? names[i] : i)).then(
    (fs) => fs.filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)),
    () => [],
  );
}

async function cacheEntriesOf(id: string): Promise<string[]> {
  return (await readdir(join(cfg.cni.cacheDir, 'results')).catch(() => [] as string[])).filter((f) => f.includes(id));
}

function summaryOf(rec: Readonly<SandboxRecord>): SetupResult {
  return summarize(rec.results as SetupResult['results']);
}

/** What a pod on both networks must look like, checked against the namespace itself. */
async function expectWired(ns: string, r: SetupResult, loopback = true): Promise<void> {
  expect(Object.keys(r.interfaces).sort()).toEqual(loopback ? ['eth0', 'eth1', 'lo'] : ['eth0', 'eth1']);
  expect(r.results.map((x) => [x.network, x.ifName])).toEqual([...(loopback ? [['cni-loopback', 'lo']] : []), [names[0], 'eth0'], [names[1], 'eth1']]);
  for (const [i, ifName] of ['eth0', 'eth1'].entries()) {
    const info = r.interfaces[ifName];
    expect(info.sandbox).toBe(ns);
    expect(info.ipConfigs).toHaveLength(1);
    const ip = info.ipConfigs[0];
    expect(ip.family).toBe(4);
    expect(ip.ip.startsWith(`${subnets[i].prefix}.`)).toBe(true);
    expect(ip.address).toBe(`${ip.ip}/24`);
    expect(ip.gateway).toBe(subnets[i].gateway);
    expect((await ipAddrsIn(ns, ifName)).map((a) => a.cidr)).toContain(ip.address);
    const link = await linkInfo(ns, ifName);
    expect(info.mac).toBe(link?.address);
  }
  if (loopback) {
    expect(r.interfaces['lo'].ipConfigs.map((c) => c.ip)).toContain('127.0.0.1');
    expect((await linkInfo(ns, 'lo'))?.flags).toContain('UP');
  }
}

const engineError = (p: Promise<unknown>): Promise<EngineError> => rejectionOf(p, EngineError);

describe('a runtime-owned namespace', () => {
  it('in parallel: set up (lo, eth0, eth1), checked, torn down, forgotten, and the namespace stays', async () => {
    const engine = await newEngine();
    const ns = await runtimeNamespace();
    const req = request(ns);
    const { record, result } = await engine.setUp(req, AbortSignal.timeout(60_000));
    expect(record).toMatchObject({ id: req.id, door: 'cni', phase: 'ready', netnsPath: ns, netnsOwner: 'runtime', clusterIfName: 'eth0' });
    await expectWired(ns, summaryOf(record));
    // The answer is the cluster network's result; the pod's IP is its address.
    expect((result as Result).ips![0].address).toBe(summaryOf(record).interfaces['eth0'].ipConfigs[0].address);
    expect(record.ips).toEqual([{ ip: summaryOf(record).interfaces['eth0'].ipConfigs[0].ip, ifName: 'eth0' }]);
    await engine.check(req.id, AbortSignal.timeout(60_000));
    // Nothing of podnet's own: no namespace under its dir, no ledger entry.
    expect(await new NetnsManager(cfg.netnsDir).list()).toEqual([]);
    expect(await new NetnsLedger(cfg.stateDir).list()).toEqual([]);

    await engine.tearDown(req.id);
    expect(engine.get(req.id)).toMatchObject({ phase: 'notready', ips: [] });
    expect(await linkExists(ns, 'eth0')).toBe(false);
    expect(await linkExists(ns, 'eth1')).toBe(false);
    expect(await allocFiles(0)).toEqual([]);
    expect(await allocFiles(1)).toEqual([]);
    expect(await cacheEntriesOf(req.id)).toEqual([]);
    expect(await runtimeNetns.exists(ns)).toBe(true);

    await engine.tearDown(req.id, { forget: true });
    expect(engine.get(req.id)).toBeUndefined();
    expect(await pathExists(join(cfg.stateDir, 'sandboxes', `${req.id}.json`))).toBe(false);
    expect(await runtimeNetns.exists(ns)).toBe(true);
  });

  it('serially, without loopback (the CNI door): eth0 and eth1 only', async () => {
    const engine = await newEngine({ setupSerially: true });
    const ns = await runtimeNamespace();
    const req = request(ns, { loopback: false });
    const { record } = await engine.setUp(req, AbortSignal.timeout(60_000));
    await expectWired(ns, summaryOf(record), false);
    expect(record.attachments.map((a) => a.ifName)).toEqual(['eth0', 'eth1']);
    await engine.tearDown(req.id, { forget: true });
    expect(await allocFiles(0)).toEqual([]);
    expect(await runtimeNetns.exists(ns)).toBe(true);
  });

  it("CNI_ARGS: IgnoreUnknown=1 first, the pod's K8S_POD_*, then the door's extra args without repeats (as cached for DEL)", async () => {
    const engine = await newEngine();
    const ns = await runtimeNamespace();
    const req = request(ns, { cniArgs: [['IgnoreUnknown', 'false'], ['K8S_POD_NAME', 'other'], ['EXTRA', 'x']] });
    await engine.setUp(req, AbortSignal.timeout(60_000));
    for (const [net, ifName] of [['cni-loopback', 'lo'], [names[0], 'eth0'], [names[1], 'eth1']] as const) {
      const raw = JSON.parse(await readFile(join(cfg.cni.cacheDir, 'results', `${net}-${req.id}-${ifName}`), 'utf8')) as { cniArgs: unknown; netns: unknown };
      expect(raw.cniArgs).toEqual([
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAMESPACE', 'shop'],
        ['K8S_POD_NAME', req.pod.name],
        ['K8S_POD_INFRA_CONTAINER_ID', req.id],
        ['K8S_POD_UID', req.pod.uid],
        ['EXTRA', 'x'],
      ]);
      expect(raw.netns).toBe(ns);
    }
    await engine.tearDown(req.id, { forget: true });
  });

  it('a failed ADD is rolled back: what succeeded is DELeted, no record, the namespace stays', async () => {
    const engine = await newEngine();
    const ns = await runtimeNamespace();
    const req = request(ns, { networks: { runtimeHandler: 'failing' } });
    const err = await engineError(engine.setUp(req, AbortSignal.timeout(60_000)));
    expect(err.kind).toBe('plugin-failed');
    expect(err.cniCode).toBeGreaterThan(0);
    expect(err.message).toContain(`failed to set up network for sandbox ${req.id}`);
    expect(engine.get(req.id)).toBeUndefined();
    expect(await linkExists(ns, 'eth0')).toBe(false);
    expect(await pathExists(join(dataDir, goodName))).toBe(true);
    expect(await allocFiles(goodName)).toEqual([]);
    expect(await cacheEntriesOf(req.id)).toEqual([]);
    expect(await runtimeNetns.exists(ns)).toBe(true);
  });

  it('recovery undoes an interrupted setup without touching the namespace', async () => {
    const first = await newEngine();
    const ns = await runtimeNamespace();
    const req = request(ns);
    await first.setUp(req, AbortSignal.timeout(60_000));
    // As if the daemon died mid-ADD: the record on disk still says creating.
    const file = join(cfg.stateDir, 'sandboxes', `${req.id}.json`);
    await writeFile(file, JSON.stringify({ ...(JSON.parse(await readFile(file, 'utf8')) as SandboxRecord), phase: 'creating' }));
    const engine = await newEngine();
    const report = await engine.recover();
    expect(report.finished).toBeGreaterThanOrEqual(1);
    expect(engine.get(req.id)).toBeUndefined();
    expect(await linkExists(ns, 'eth0')).toBe(false);
    expect(await allocFiles(0)).toEqual([]);
    expect(await runtimeNetns.exists(ns)).toBe(true);
  });
});

describe('teardown is idempotent', () => {
  it('twice in a row, then of an id never seen', async () => {
    const engine = await newEngine();
    const ns = await runtimeNamespace();
    const req = request(ns);
    await engine.setUp(req, AbortSignal.timeout(60_000));
    await engine.tearDown(req.id);
    await engine.tearDown(req.id);
    await engine.tearDown(req.id, { forget: true });
    await engine.tearDown(req.id, { forget: true });
    await engine.tearDown(`never${randomHex(8)}`, { forget: true });
    expect(await allocFiles(0)).toEqual([]);
    expect(await allocFiles(1)).toEqual([]);
    expect(await cacheEntriesOf(req.id)).toEqual([]);
  });

  it('after the runtime removed its namespace: IPs are still released', async () => {
    const engine = await newEngine();
    const mgr = new NetnsManager(join(root, `runtime-gone-${randomHex(4)}`));
    const ns = await mgr.create();
    const req = request(ns);
    const { record } = await engine.setUp(req, AbortSignal.timeout(60_000));
    expect(summaryOf(record).interfaces['eth0'].ipConfigs).toHaveLength(1);
    await mgr.remove(ns);
    expect(await pathExists(ns)).toBe(false);
    await engine.tearDown(req.id, { forget: true });
    await engine.tearDown(req.id, { forget: true });
    expect(await allocFiles(0)).toEqual([]);
    expect(await allocFiles(1)).toEqual([]);
    expect(await cacheEntriesOf(req.id)).toEqual([]);
  });

  it('after the namespace vanished while podnet was down: recovery marks it notready, the next teardown still DELs', async () => {
    const first = await newEngine();
    const mgr = new NetnsManager(join(root, `runtime-gone-${randomHex(4)}`));
    const ns = await mgr.create();
    const req = request(ns);
    await first.setUp(req, AbortSignal.timeout(60_000));
    await mgr.remove(ns);
    const engine = await newEngine();
    await engine.recover();
    expect(engine.get(req.id)).toMatchObject({ phase: 'notready', ips: [], teardownPending: true });
    expect(await allocFiles(0)).toHaveLength(1);
    await engine.tearDown(req.id, { forget: true });
    expect(engine.get(req.id)).toBeUndefined();
    expect(await allocFiles(0)).toEqual([]);
    expect(await allocFiles(1)).toEqual([]);
    expect(await cacheEntriesOf(req.id)).toEqual([]);
  });

  it('with no cache entries: DEL from the recorded config still releases everything', async () => {
    const engine = await newEngine();
    const ns = await runtimeNamespace();
    const req = request(ns);
    await engine.setUp(req, AbortSignal.timeout(60_000));
    for (const f of await cacheEntriesOf(req.id)) await rm(join(cfg.cni.cacheDir, 'results', f));
    await engine.tearDown(req.id, { forget: true });
    expect(await linkExists(ns, 'eth0')).toBe(false);
    expect(await linkExists(ns, 'eth1')).toBe(false);
    expect(await allocFiles(0)).toEqual([]);
    expect(await allocFiles(1)).toEqual([]);
  });

  it('with no cache entry, DEL still gets the recorded result as its prevResult', async () => {
    const engine = await newEngine();
    const req = request(await runtimeNamespace(), { networks: { runtimeHandler: 'recorded' }, loopback: false });
    await engine.setUp(req, AbortSignal.timeout(60_000));
    for (const f of await cacheEntriesOf(req.id)) await rm(join(cfg.cni.cacheDir, 'results', f));
    await engine.tearDown(req.id, { forget: true });
    const lines = (await readFile(recordFile, 'utf8')).trim().split('\n').filter((l) => l.split('\t')[1] === req.id);
    expect(lines.map((l) => l.split('\t')[0])).toEqual(['ADD', 'DEL']);
    const del = JSON.parse(lines[1].split('\t')[3]) as { prevResult?: Record<string, unknown> };
    expect(del.prevResult).toMatchObject({ cniVersion: '1.1.0' });
  });
});

describe('a host-network pod', () => {
  it('is recorded ready, and a Stop leaves it notready on disk too (one stopped step), then it is forgotten', async () => {
    const steps: string[] = [];
    const { engine, networks } = await startTestEngine(cfg, log, { sandboxStep: (step, rec) => rec.id === id && steps.push(step) });
    managers.push(networks);
    const id = `pod${randomHex(16)}`;
    const req: SetupRequest = { ...request('/nonexistent'), id, hostNetwork: true, netns: { owner: 'podnet' } };
    await engine.setUp(req, AbortSignal.timeout(60_000));
    expect(engine.get(id)).toMatchObject({ phase: 'ready', netnsPath: '' });
    await engine.tearDown(id);
    const file = join(cfg.stateDir, 'sandboxes', `${id}.json`);
    expect(engine.get(id)).toMatchObject({ phase: 'notready' });
    expect((JSON.parse(await readFile(file, 'utf8')) as SandboxRecord).phase).toBe('notready');
    await engine.tearDown(id, { forget: true });
    expect(engine.get(id)).toBeUndefined();
    expect(await pathExists(file)).toBe(false);
    expect(steps).toEqual(['created', 'ready', 'stopped', 'removed']);
  });
});

describe('teardown mirrors setup', () => {
  it('the networks set up together are torn down together (each DEL waits for the other), and serially one at a time', async () => {
    const ns = await runtimeNamespace();
    const engine = await newEngine();
    const req = request(ns, { networks: { runtimeHandler: 'together' } });
    const { record } = await engine.setUp(req, AbortSignal.timeout(60_000));
    expect(record.attachments.map((a) => a.ifName)).toEqual(['lo', 'eth0', 'eth1']);
    await engine.tearDown(req.id, { forget: true });
    expect((await readdir(rendezvous)).sort()).toEqual(['eth0', 'eth1']);
    expect(engine.get(req.id)).toBeUndefined();
    expect(await cacheEntriesOf(req.id)).toEqual([]);

    // setup_serially: one DEL at a time, so the first one waits in vain and the sandbox is kept.
    await rm(rendezvous, { recursive: true });
    const serial = await newEngine({ setupSerially: true });
    const req2 = request(await runtimeNamespace(), { networks: { runtimeHandler: 'together' } });
    await serial.setUp(req2, AbortSignal.timeout(60_000));
    const err = await engineError(serial.tearDown(req2.id));
    expect(err.message).toContain('DEL rendezvous timed out');
    expect(serial.get(req2.id)).toMatchObject({ phase: 'notready', lastError: expect.stringContaining('rendezvous') as unknown });
    // The other one arrives: the retry finishes.
    await writeFile(join(rendezvous, 'eth0'), '');
    await serial.tearDown(req2.id, { forget: true });
    expect(serial.get(req2.id)).toBeUndefined();
    expect(await cacheEntriesOf(req2.id)).toEqual([]);
  });
});

describe('a failed DEL', () => {
  it('keeps the record, notready with the error, and the next teardown finishes the job', async () => {
    const engine = await newEngine();
    const ns = await runtimeNamespace();
    const req = request(ns, { networks: { runtimeHandler: 'delfail' }, loopback: false });
    await engine.setUp(req, AbortSignal.timeout(60_000));
    expect(await allocFiles(delFailName)).toHaveLength(1);
    await writeFile(delMarker, '');
    const err = await engineError(engine.tearDown(req.id, { forget: true }));
    expect(err.kind).toBe('plugin-failed');
    expect(err.cniCode).toBe(11);
    expect(err.message).toContain(`failed to tear down network of sandbox ${req.id}`);
    expect(engine.get(req.id)).toMatchObject({ phase: 'notready', lastError: expect.stringContaining('DEL refused while the marker file exists') });
    // A restart still knows it: the record is on disk.
    const again = await newEngine();
    await again.recover();
    expect(again.get(req.id)).toMatchObject({ phase: 'notready', lastError: expect.stringContaining('DEL refused') });
    await rm(delMarker);
    await again.tearDown(req.id, { forget: true });
    expect(again.get(req.id)).toBeUndefined();
    expect(await allocFiles(delFailName)).toEqual([]);
    expect(await cacheEntriesOf(req.id)).toEqual([]);
    expect(await runtimeNetns.exists(ns)).toBe(true);
  });
});

describe('recovery comes first', () => {
  it('a setup that arrives while recovery runs waits for it (recovery undoes the interrupted one, then the new one is made)', async () => {
    const first = await newEngine();
    const ns = await runtimeNamespace();
    const req = request(ns);
    await first.setUp(req, AbortSignal.timeout(60_000));
    // The daemon died mid-ADD of this id; the runtime retries the ADD as the new daemon starts.
    const file = join(cfg.stateDir, 'sandboxes', `${req.id}.json`);
    await writeFile(file, JSON.stringify({ ...(JSON.parse(await readFile(file, 'utf8')) as SandboxRecord), phase: 'creating' }));
    const engine = await newEngine();
    const [report, { record }] = await Promise.all([engine.recover(), engine.setUp(req, AbortSignal.timeout(60_000))]);
    expect(report.finished).toBe(1);
    expect(record.phase).toBe('ready');
    expect(engine.get(req.id)).toBe(record);
    const ip = summaryOf(record).interfaces['eth0'].ipConfigs[0];
    // One IPv4 address on eth0: the first ADD was undone before the retried one ran.
    expect((await ipAddrsIn(ns, 'eth0')).filter((a) => a.family === 'inet').map((a) => a.cidr)).toEqual([ip.address]);
    expect(await allocFiles(0)).toHaveLength(1);
    await engine.tearDown(req.id, { forget: true });
    expect(await allocFiles(0)).toEqual([]);
  });

  it('network readiness by handler or by network name, with the reason', async () => {
    const engine = await newEngine();
    expect(engine.networkReadiness({ runtimeHandler: '' })).toMatchObject({ ready: true, message: expect.stringContaining(names[0]) });
    expect(engine.networkReadiness({ network: names[1] })).toEqual({ ready: true, message: `network "${names[1]}" is loaded` });
    expect(engine.networkReadiness({ network: 'nope' })).toEqual({ ready: false, message: 'network "nope" is not loaded from any conf dir' });
    expect(engine.networkReadiness({ runtimeHandler: 'nope' })).toMatchObject({ ready: false, message: expect.stringContaining('runtime handler "nope" is not declared') });
  });
});

describe('a podnet-owned namespace', () => {
  it('is made under the netns dir and in the ledger, and removed by teardown', async () => {
    const engine = await newEngine();
    const req = request('', { door: 'cri', netns: { owner: 'podnet' }, pod: { namespace: 'shop', name: `p-${randomHex(4)}`, uid: `u-${randomHex(4)}`, attempt: 0 } });
    const { record } = await engine.setUp(req, AbortSignal.timeout(60_000));
    expect(record.netnsOwner).toBe('podnet');
    expect(await new NetnsManager(cfg.netnsDir).list()).toEqual([record.netnsPath]);
    expect(await new NetnsLedger(cfg.stateDir).list()).toEqual([record.netnsPath]);
    // The same pod attempt twice is already-exists, naming the live sandbox.
    const again = await engineError(engine.setUp({ ...req, id: `pod${randomHex(16)}` }, AbortSignal.timeout(60_000)));
    expect(again.kind).toBe('already-exists');
    expect(again.message).toContain(req.id);
    await engine.tearDown(req.id, { forget: true });
    expect(await pathExists(record.netnsPath)).toBe(false);
    expect(await new NetnsLedger(cfg.stateDir).list()).toEqual([]);
    expect(await allocFiles(0)).toEqual([]);
  });
});

describe('bad requests: a clear kind, nothing recorded or made', () => {
  it('invalid id, missing namespace, unknown network, unknown sandbox, the same id twice', async () => {
    const engine = await newEngine();
    const ns = await runtimeNamespace();
    const bad = await engineError(engine.setUp(request(ns, { id: '../etc' }), AbortSignal.timeout(10_000)));
    expect(bad.kind).toBe('invalid-request');
    expect(bad.message).toContain('invalid container id "../etc"');
    const missing = join(root, 'no-such-netns');
    const gone = await engineError(engine.setUp(request(missing), AbortSignal.timeout(10_000)));
    expect(gone.kind).toBe('invalid-request');
    expect(gone.message).toBe(`network namespace ${missing} does not exist (or is not a network namespace)`);
    const rel = await engineError(engine.setUp(request('netns/x'), AbortSignal.timeout(10_000)));
    expect(rel.kind).toBe('invalid-request');
    const unknown = await engineError(engine.setUp(request(ns, { networks: { network: 'no-such-net' } }), AbortSignal.timeout(10_000)));
    expect(unknown.kind).toBe('failed-precondition');
    expect(unknown.message).toBe('network "no-such-net" is not loaded from any conf dir');
    const handler = await engineError(engine.setUp(request(ns, { networks: { runtimeHandler: 'nope' } }), AbortSignal.timeout(10_000)));
    expect(handler.kind).toBe('invalid-request');
    expect(handler.message).toContain('runtime handler "nope" is not declared');
    expect((await engineError(engine.check('unknown', AbortSignal.timeout(10_000)))).kind).toBe('not-found');
    expect(engine.list()).toEqual([]);
    expect(await allocFiles(0)).toEqual([]);

    // One network by name: the pod joins only it.
    const req = request(ns, { networks: { network: names[1] }, loopback: false });
    const { record } = await engine.setUp(req, AbortSignal.timeout(60_000));
    expect(record.attachments.map((a) => [a.network, a.ifName])).toEqual([[names[1], 'eth0']]);
    expect(record.network).toBe(names[1]);
    const twice = await engineError(engine.setUp(req, AbortSignal.timeout(10_000)));
    expect(twice.kind).toBe('already-exists');
    await engine.tearDown(req.id, { forget: true });
    expect(await allocFiles(1)).toEqual([]);
  });
});

describe("a door's GC", () => {
  it("releases that door's pods missing from the runtime's valid list, and nothing else", async () => {
    const engine = await newEngine();
    const [nsA, nsB] = [await runtimeNamespace(), await runtimeNamespace()];
    const a = request(nsA);
    const b = request(nsB);
    const c = request('', { door: 'cri', netns: { owner: 'podnet' } });
    await engine.setUp(a, AbortSignal.timeout(60_000));
    await engine.setUp(b, AbortSignal.timeout(60_000));
    const { record: cri } = await engine.setUp(c, AbortSignal.timeout(60_000));
    const report = await engine.gc({ door: 'cni', validAttachments: [{ containerID: a.id, ifname: 'eth0' }] });
    expect(report.releasedSandboxes).toBe(1);
    expect(report.errors).toEqual([]);
    expect(engine.list().map((r) => r.id).sort()).toEqual([a.id, c.id].sort());
    expect(await cacheEntriesOf(b.id)).toEqual([]);
    expect(await linkExists(nsB, 'eth0')).toBe(false);
    expect(await runtimeNetns.exists(nsB)).toBe(true);
    expect(await linkExists(nsA, 'eth0')).toBe(true);
    expect(await linkExists(cri.netnsPath, 'eth0')).toBe(true);
    await engine.tearDown(a.id, { forget: true });
    await engine.tearDown(c.id, { forget: true });
    expect(await allocFiles(0)).toEqual([]);
  });
});

describe('podnet doctor --fix and runtime-owned namespaces', () => {
  it('never lists or removes a namespace a record says the runtime owns, even in our netns dir', async () => {
    const engine = await newEngine();
    // containerd names its namespaces cni-<uuid> in the same dir podnet uses.
    const shared = new NetnsManager(cfg.netnsDir);
    const ns = await runtimeNamespace(shared);
    const req = request(ns);
    await engine.setUp(req, AbortSignal.timeout(60_000));
    const opts = { stateDir: cfg.stateDir, netnsDir: cfg.netnsDir, cacheDir: cfg.cni.cacheDir, confDir: cfg.cni.confDir, binDirs: cfg.cni.binDirs };
    const leaks = actionable(await findLeaks(opts));
    expect(leaks.filter((l) => l.path === ns || l.containerID === req.id)).toEqual([]);
    // Even a (wrong) leak naming it is refused at fix time.
    const errors = await fixLeaks([{ kind: 'netns', path: ns, containerID: '', detail: 'test' }], opts);
    expect(errors).toEqual([`netns ${ns}: not removed: the container runtime owns this namespace (a sandbox of the CNI door)`]);
    expect(await shared.exists(ns)).toBe(true);
    await engine.tearDown(req.id, { forget: true });
    expect(await shared.exists(ns)).toBe(true);
  });
});

describe('a record written before the engine (version 1)', () => {
  it('loads as a CRI pod with a podnet-owned namespace, and tears down after the upgrade', async () => {
    const fixture = JSON.parse(await readFile(new URL('../fixtures/records/v1-ready.json', import.meta.url), 'utf8')) as Record<string, unknown>;
    const engine = await newEngine();
    const req = request('', { door: 'cri', netns: { owner: 'podnet' }, pod: { namespace: 'e2e', name: `old-${randomHex(4)}`, uid: `u-${randomHex(4)}`, attempt: 0 } });
    const id = randomHex(32);
    const { record } = await engine.setUp({ ...req, id }, AbortSignal.timeout(60_000));
    // Today's live pod, rewritten in the old format: the fixture's fields, in its order, with this pod's values.
    const live = record as unknown as Record<string, unknown>;
    const v1: Record<string, unknown> = {};
    for (const key of Object.keys(fixture)) v1[key] = key in live && key !== 'version' ? live[key] : fixture[key];
    expect(Object.keys(v1)).toEqual(['id', 'phase', 'metadata', 'config', 'runtimeHandler', 'createdAt', 'hostNetwork', 'netnsPath', 'attachments', 'cniArgs', 'capabilityArgs', 'ips', 'results', 'timings', 'version']);
    expect(v1['version']).toBe(1);
    await writeFile(join(cfg.stateDir, 'sandboxes', `${id}.json`), JSON.stringify(v1));

    const upgraded = await newEngine();
    const report = await upgraded.recover();
    expect(report.corrupt).toEqual([]);
    const rec = upgraded.get(id)!;
    expect(rec).toMatchObject({ id, door: 'cri', phase: 'ready', netnsOwner: 'podnet', clusterIfName: 'eth0', netnsPath: record.netnsPath, version: 2 });
    expect(rec.cri).toEqual({ config: fixture['config'], createdAt: fixture['createdAt'] });
    expect(rec).not.toHaveProperty('config');
    expect(upgraded.resolve(id.slice(0, 10), 'cri')?.id).toBe(id);
    // The CLI reads it the same way.
    expect((await SandboxStore.readAll(cfg.stateDir)).find((r) => r.id === id)).toMatchObject({ door: 'cri', netnsOwner: 'podnet', cri: { createdAt: fixture['createdAt'] } });

    await upgraded.tearDown(id, { forget: true });
    expect(await pathExists(record.netnsPath)).toBe(false);
    expect(await new NetnsLedger(cfg.stateDir).list()).toEqual([]);
    expect(await allocFiles(0)).toEqual([]);
    expect(await cacheEntriesOf(id)).toEqual([]);
  });

  it('the captured fixture itself reads as an upgraded record', async () => {
    const dir = join(root, `fixture-state-${randomHex(4)}`);
    const text = await readFile(new URL('../fixtures/records/v1-ready.json', import.meta.url), 'utf8');
    const fixture = JSON.parse(text) as { id: string; config: unknown; createdAt: string; netnsPath: string };
    await mkdir(join(dir, 'sandboxes'), { recursive: true });
    await writeFile(join(dir, 'sandboxes', `${fixture.id}.json`), text);
    const [rec] = await SandboxStore.readAll(dir);
    expect(rec).toMatchObject({ id: fixture.id, door: 'cri', netnsOwner: 'podnet', clusterIfName: 'eth0', netnsPath: fixture.netnsPath, cri: { config: fixture.config, createdAt: fixture.createdAt }, version: 2 });
  });
});

// A RunPodSandbox whose attachment's chain fails part-way, and whose rollback DEL fails too: the
// daemon must not forget the IP the chain's first plugin got. Real podnetd, real bridge and
// host-local; the e2e-passthrough fault plugin fails ADD and DEL while marker files exist.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { status } from '@grpc/grpc-js';
import { PodSandboxState } from '../../src/gen/runtime/v1/api.js';
import type { SandboxRecord } from '../../src/engine/store.js';
import {
  expectNothingLeft,
  listDir,
  newRoot,
  nsfsMountsUnder,
  podConfig,
  REPO_ROOT,
  rpcError,
  startDaemon,
  testNetwork,
  uniqueBridge,
  uniqueSubnet,
  disposeAll,
  type Daemon,
} from './harness.js';
import { TEST_PLUGIN_PATH, waitFor } from '../helpers/env.js';

const PODNET = join(REPO_ROOT, 'bin', 'podnet');
const IPV4_RE = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
const NAD_NAME = 'side-net';

afterEach(async () => {
  const errors = await disposeAll();
  expect(errors.map((e) => e.message)).toEqual([]);
});

interface Env {
  d: Daemon;
  /** ADD of the side network's fault plugin fails while this exists. */
  addMarker: string;
  /** DEL of the side network's fault plugin fails while this exists. */
  delMarker: string;
  cluster: string;
  side: string;
}

/**
 * A daemon whose cluster network is bridge + host-local, and a NAD side-net whose chain is
 * bridge + host-local then the fault plugin (or the fault plugin first, with faultFirst).
 */
async function setup(faultFirst = false): Promise<Env> {
  const root = await newRoot();
  const cluster = testNetwork(root);
  const addMarker = join(root, 'fail-add');
  const delMarker = join(root, 'fail-del');
  const subnet = uniqueSubnet();
  const side = `pn-side-${Math.random().toString(16).slice(2, 10)}`;
  const bridge = { type: 'bridge', bridge: uniqueBridge(), isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: join(root, 'ipam'), ranges: [[{ subnet: subnet.subnet }]] } };
  const fault = { type: 'e2e-passthrough', failAddIfExists: addMarker, failDelIfExists: delMarker };
  const config = { cniVersion: '1.0.0', name: side, plugins: faultFirst ? [fault, bridge] : [bridge, fault] };
  const nadDir = join(root, 'attachments.d');
  await mkdir(nadDir, { recursive: true });
  const nad = { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: NAD_NAME, namespace: 'e2e' }, spec: { config: JSON.stringify(config) } };
  await writeFile(join(nadDir, 'side.json'), JSON.stringify(nad));
  const d = await startDaemon({
    root,
    confFiles: { '10-e2e.conflist': cluster.text },
    top: { gc_interval: '1h' },
    cni: { bin_dirs: [...TEST_PLUGIN_PATH] },
  });
  await writeFile(addMarker, '');
  await writeFile(delMarker, '');
  return { d, addMarker, delMarker, cluster: cluster.name, side };
}

async function allocations(d: Daemon, network: string): Promise<string[]> {
  return (await listDir(join(d.ipamDir, network))).filter((n) => IPV4_RE.test(n));
}

async function record(d: Daemon, id: string): Promise<SandboxRecord> {
  return JSON.parse(await readFile(join(d.stateDir, 'sandboxes', `${id}.json`), 'utf8')) as SandboxRecord;
}

const sidePod = () => podConfig({ annotations: { 'k8s.v1.cni.cncf.io/networks': NAD_NAME } });

/** Run fails (the side chain's second plugin), the rollback DEL fails there too; the sandbox stays. */
async function failedRun(e: Env): Promise<string> {
  const err = await rpcError(e.d.rpc.run(sidePod()));
  expect(err.code, err.message).toBe(status.UNAVAILABLE);
  expect(err.details).toMatch(/ADD refused while the marker file exists/);
  const pods = await e.d.rpc.list();
  expect(pods.map((p) => p.state)).toEqual([PodSandboxState.SANDBOX_NOTREADY]);
  const id = pods[0].id;
  // bridge's ADD on the side network returned: its address is still held, and known.
  expect(await allocations(e.d, e.side)).toHaveLength(1);
  // The cluster network's DEL worked: released.
  expect(await allocations(e.d, e.cluster)).toEqual([]);
  const rec = await record(e.d, id);
  expect(rec.phase).toBe('notready');
  expect(rec.lastError).toMatch(/DEL refused while the marker file exists/);
  expect(rec.attachments.find((a) => a.network === e.side)?.addedPlugins).toEqual(['bridge']);
  expect(rec.attachments.find((a) => a.network === e.cluster)?.addedPlugins).toEqual(['bridge']);
  expect(e.d.logs.some((l) => String(l['msg']).startsWith('ignoring DEL failure'))).toBe(false);
  // The namespace is kept for the retry.
  expect((await e.d.netnsFiles()).length).toBe(1);
  return id;
}

async function expectClean(e: Env): Promise<void> {
  expect(await allocations(e.d, e.side)).toEqual([]);
  expect(await allocations(e.d, e.cluster)).toEqual([]);
  expect(await e.d.netnsFiles()).toEqual([]);
  expect(await e.d.cacheEntries()).toEqual([]);
  expect(await nsfsMountsUnder(e.d.root)).toEqual([]);
}

describe('a failed rollback never forgets an IP', () => {
  it('keeps the sandbox NOTREADY with the error; podnet doctor shows it; GC retries and releases it', async () => {
    const e = await setup();
    const id = await failedRun(e);
    const info = await e.d.rpc.statusInfo(id);
    expect(String(info['lastError'])).toMatch(/marker file exists/);

    const doctor = await execa(PODNET, ['doctor', '--json', '--state-dir', e.d.stateDir, '--netns-dir', e.d.netnsDir, '--cache-dir', e.d.cacheDir, '--conf-dir', e.d.confDir], { reject: false });
    const report = JSON.parse(String(doctor.stdout)) as { leaks: Array<{ kind: string; path: string; detail: string }> };
    const teardown = report.leaks.filter((l) => l.kind === 'teardown');
    expect(teardown.map((l) => l.path)).toEqual([id]);
    expect(teardown[0].detail).toMatch(/DEL failed .*marker file exists.*retries on Stop, Remove and GC/);

    // GC while DEL still fails: still kept.
    const retried = (): number => e.d.logs.filter((l) => String(l['msg']).startsWith('retried a failed teardown')).length;
    const gcDone = (): number => e.d.logs.filter((l) => l['msg'] === 'cni garbage collection done').length;
    expect(await waitFor(() => gcDone() >= 1, 10_000)).toBe(true);
    const before = gcDone();
    process.kill(e.d.pid, 'SIGUSR1');
    expect(await waitFor(() => gcDone() > before, 15_000)).toBe(true);
    expect(e.d.logs.filter((l) => l['msg'] === 'retried a failed teardown: still failing; will retry').length).toBeGreaterThan(0);
    expect(await allocations(e.d, e.side)).toHaveLength(1);

    await rm(e.delMarker);
    const n = retried();
    process.kill(e.d.pid, 'SIGUSR1');
    expect(await waitFor(() => e.d.logs.some((l) => l['msg'] === 'retried a failed teardown: done' && l['sandbox'] === id), 15_000)).toBe(true);
    expect(retried()).toBeGreaterThan(n);
    await expectClean(e);
    expect((await e.d.rpc.list()).map((p) => p.state)).toEqual([PodSandboxState.SANDBOX_NOTREADY]);
    expect((await e.d.rpc.statusInfo(id))['lastError']).toBeUndefined();
    await e.d.rpc.remove(id);
    expect(await e.d.rpc.list()).toEqual([]);
  });

  it('Stop and Remove retry it; Remove never forgets it while DEL fails', async () => {
    const e = await setup();
    const id = await failedRun(e);
    expect((await rpcError(e.d.rpc.stop(id))).details).toMatch(/DEL refused/);
    expect((await rpcError(e.d.rpc.remove(id))).details).toMatch(/DEL refused/);
    expect((await e.d.rpc.list()).map((p) => p.id)).toEqual([id]);
    expect(await allocations(e.d, e.side)).toHaveLength(1);

    await rm(e.delMarker);
    await e.d.rpc.remove(id);
    expect(await e.d.rpc.list()).toEqual([]);
    await expectClean(e);
    // The pod runs once the fault is gone.
    await rm(e.addMarker);
    const ok = await e.d.rpc.run(sidePod());
    expect(await allocations(e.d, e.side)).toHaveLength(1);
    await e.d.rpc.stop(ok);
    await e.d.rpc.remove(ok);
    await expectClean(e);
  });

  it('forgets an attachment none of whose plugins returned from ADD, even if its DEL fails', async () => {
    const e = await setup(true);
    const err = await rpcError(e.d.rpc.run(sidePod()));
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(await e.d.rpc.list()).toEqual([]);
    expect(e.d.logs.some((l) => l['msg'] === 'ignoring DEL failure of an attachment no plugin of which returned from ADD' && l['network'] === e.side)).toBe(true);
    await expectClean(e);
  });

  it('left no namespace mounts, bridges, processes or iptables rules behind', async () => {
    await expectNothingLeft();
  });
});

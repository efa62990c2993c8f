// The CRI surface beyond the sandbox lifecycle, over a real socket with the generated grpc-js
// clients: the ImageService of a runtime with no images, container RPCs that answer truthfully,
// pod sandbox network stats (helper and inline spawner), and GetContainerEvents with several
// clients, one of which goes away.
import { createSocket } from 'node:dgram';
import { credentials, Metadata, status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  ContainerEventType,
  ContainerStatsRequest,
  ContainerStatusRequest,
  GetEventsRequest,
  ImageFsInfoRequest,
  ImageServiceClient,
  ImageStatusRequest,
  ListContainerStatsRequest,
  ListContainersRequest,
  ListImagesRequest,
  ListPodSandboxStatsRequest,
  PodSandboxStatsRequest,
  PullImageRequest,
  RemoveImageRequest,
  type ContainerEventResponse,
  type ImageFsInfoResponse,
  type ImageStatusResponse,
} from '../../src/gen/runtime/v1/api.js';
import { sh, TEST_PLUGIN_PATH, waitFor } from '../helpers/env.js';
import { type Daemon, disposeAll, expectNothingLeft, newRoot, onCleanup, podConfig, rpcError, startDaemon, testNetwork } from './harness.js';

const UNKNOWN_ID = 'cd'.repeat(32);

afterEach(async () => {
  expect(await disposeAll()).toEqual([]);
});

afterAll(async () => {
  await disposeAll();
});

async function daemonWithNetwork(top: Record<string, string> = {}): Promise<Daemon> {
  const root = await newRoot();
  const net = testNetwork(root);
  return startDaemon({ root, confFiles: { '10-net.conflist': net.text }, top });
}

function imageClient(d: Daemon): ImageServiceClient {
  const c = new ImageServiceClient(`unix://${d.socket}`, credentials.createInsecure());
  onCleanup(() => c.close(), 'close image client');
  return c;
}

/** One unary ImageService call as a promise; a failure rejects with the ServiceError. */
function imageCall<Req, Res>(fn: (req: Req, md: Metadata, cb: (err: ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, new Metadata(), (err, res) => (err ? reject(err) : resolve(res))));
}

async function grpcCode(p: Promise<unknown>): Promise<{ code: status; details: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as ServiceError;
    return { code: e.code, details: e.details };
  }
  throw new Error('expected the call to fail');
}

describe('ImageService', () => {
  it('answers as a runtime with no images; ImageFsInfo is the state dir filesystem', async () => {
    const d = await daemonWithNetwork();
    const c = imageClient(d);
    expect(await imageCall(c.listImages.bind(c), ListImagesRequest.fromPartial({}))).toEqual({ images: [] });
    expect(await imageCall(c.imageStatus.bind(c), ImageStatusRequest.fromPartial({ image: { image: 'busybox:latest' } }))).toEqual({ image: undefined, info: {} });
    const verbose = await imageCall<ImageStatusRequest, ImageStatusResponse>(c.imageStatus.bind(c), ImageStatusRequest.fromPartial({ image: { image: 'busybox:latest' }, verbose: true }));
    expect(verbose.image).toBeUndefined();
    expect(JSON.parse(verbose.info['info'] ?? '{}')).toMatchObject({ found: false });
    for (const [name, p] of [
      ['PullImage', imageCall(c.pullImage.bind(c), PullImageRequest.fromPartial({ image: { image: 'busybox' } }))],
      ['RemoveImage', imageCall(c.removeImage.bind(c), RemoveImageRequest.fromPartial({ image: { image: 'busybox' } }))],
    ] as const) {
      const e = await grpcCode(p);
      expect(e.code, name).toBe(status.UNIMPLEMENTED);
      expect(e.details).toContain(name);
      expect(e.details).toMatch(/stores no images.*container runtime/);
    }
    const fs = await imageCall<ImageFsInfoRequest, ImageFsInfoResponse>(c.imageFsInfo.bind(c), ImageFsInfoRequest.fromPartial({}));
    const df = await sh('df', ['--output=target,used,iused', '-B1', d.stateDir]);
    const [target, used, iused] = df.stdout.trim().split('\n')[1].trim().split(/\s+/);
    for (const u of [...fs.imageFilesystems, ...fs.containerFilesystems]) {
      expect(u.fsId?.mountpoint).toBe(target);
      expect(u.timestamp).toBeGreaterThan(0n);
      // The filesystem is shared with everything else on the machine: close, not equal.
      const bytes = Number(u.usedBytes!.value);
      expect(Math.abs(bytes - Number(used)), `${bytes} vs df ${used}`).toBeLessThan(Math.max(Number(used) * 0.05, 64 * 1024 * 1024));
      if (iused !== '-') expect(Math.abs(Number(u.inodesUsed!.value) - Number(iused))).toBeLessThan(Math.max(Number(iused) * 0.05, 10_000));
    }
    expect(fs.imageFilesystems).toHaveLength(1);
    expect(fs.containerFilesystems).toHaveLength(1);
  });
});

describe('container RPCs', () => {
  it('lists nothing and names the unknown id in NOT_FOUND', async () => {
    const d = await daemonWithNetwork();
    expect(await d.rpc.call('listContainers', ListContainersRequest.fromPartial({}))).toEqual({ containers: [] });
    expect(await d.rpc.call('listContainerStats', ListContainerStatsRequest.fromPartial({ filter: { podSandboxId: UNKNOWN_ID } }))).toEqual({ stats: [] });
    const status1 = await rpcError(d.rpc.call('containerStatus', ContainerStatusRequest.fromPartial({ containerId: 'web-1' })));
    expect(status1.code).toBe(status.NOT_FOUND);
    expect(status1.details).toContain('"web-1"');
    const stats1 = await rpcError(d.rpc.call('containerStats', ContainerStatsRequest.fromPartial({ containerId: 'x'.repeat(5000) })));
    expect(stats1.code).toBe(status.NOT_FOUND);
    expect(stats1.details.length).toBeLessThan(300);
    expect((await rpcError(d.rpc.call('containerStatus', ContainerStatusRequest.fromPartial({ containerId: '' })))).code).toBe(status.INVALID_ARGUMENT);
  });
});

describe.each([['helper'], ['inline']])('pod sandbox stats (spawner = %s)', (spawner) => {
  it('reads the pod interfaces inside its namespace; host network has none; NOT_FOUND for an unknown id', async () => {
    const d = await daemonWithNetwork({ spawner });
    const id = await d.rpc.run(podConfig({ labels: { stats: 'yes' } }));
    const hostID = await d.rpc.run(podConfig({ linux: { securityContext: { namespaceOptions: { network: 2 } } } }));
    const ip = (await d.rpc.status(id)).status!.network!.ip;
    const first = (await d.rpc.call('podSandboxStats', PodSandboxStatsRequest.fromPartial({ podSandboxId: id }))).stats!;
    expect(first.attributes?.id).toBe(id);
    expect(first.attributes?.labels['stats']).toBe('yes');
    const net = first.linux!.network!;
    expect(net.timestamp).toBeGreaterThan(0n);
    expect(net.defaultInterface?.name).toBe('eth0');
    expect(net.interfaces.map((i) => i.name)).toEqual(['eth0']);
    const sock = createSocket('udp4');
    for (let i = 0; i < 10; i++) await new Promise<void>((resolve, reject) => sock.send(Buffer.alloc(1000), 9, ip, (e) => (e ? reject(e) : resolve())));
    sock.close();
    const second = (await d.rpc.call('podSandboxStats', PodSandboxStatsRequest.fromPartial({ podSandboxId: id.slice(0, 16) }))).stats!;
    expect(second.linux!.network!.defaultInterface!.rxBytes!.value).toBeGreaterThanOrEqual(net.defaultInterface!.rxBytes!.value + 10_000n);

    const host = (await d.rpc.call('podSandboxStats', PodSandboxStatsRequest.fromPartial({ podSandboxId: hostID }))).stats!;
    expect(host.attributes?.id).toBe(hostID);
    expect(host.linux).toBeUndefined();

    const list = await d.rpc.call('listPodSandboxStats', ListPodSandboxStatsRequest.fromPartial({ filter: { labelSelector: { stats: 'yes' } } }));
    expect(list.stats.map((s) => s.attributes?.id)).toEqual([id]);
    expect((await d.rpc.call('listPodSandboxStats', ListPodSandboxStatsRequest.fromPartial({}))).stats.map((s) => s.attributes?.id).sort()).toEqual([id, hostID].sort());

    const missing = await rpcError(d.rpc.call('podSandboxStats', PodSandboxStatsRequest.fromPartial({ podSandboxId: UNKNOWN_ID })));
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(missing.details).toContain(UNKNOWN_ID);

    await d.rpc.stop(id);
    const stopped = (await d.rpc.call('podSandboxStats', PodSandboxStatsRequest.fromPartial({ podSandboxId: id }))).stats!;
    expect(stopped.linux).toBeUndefined();
    expect((await d.rpc.call('listPodSandboxStats', ListPodSandboxStatsRequest.fromPartial({}))).stats.map((s) => s.attributes?.id)).toEqual([hostID]);
  });
});

/** A GetContainerEvents stream; events collected as they come. */
function subscribe(d: Daemon): { stream: ClientReadableStream<ContainerEventResponse>; events: ContainerEventResponse[]; ended: Promise<status> } {
  const stream = d.client.getContainerEvents(GetEventsRequest.fromPartial({}));
  const events: ContainerEventResponse[] = [];
  stream.on('data', (ev: ContainerEventResponse) => events.push(ev));
  const ended = new Promise<status>((resolve) => {
    stream.on('status', (s: { code: status }) => resolve(s.code));
  });
  stream.on('error', () => undefined);
  return { stream, events, ended };
}

const openStreams = (d: Daemon): number => d.logs.filter((l) => l['rpc'] === 'GetContainerEvents' && l['outcome'] === 'OPEN').length;

describe('GetContainerEvents', () => {
  it('streams each sandbox lifecycle step to every client; a client that leaves is dropped; stop ends the streams', async () => {
    const d = await daemonWithNetwork();
    const a = subscribe(d);
    const b = subscribe(d);
    const gone = subscribe(d);
    expect(await waitFor(() => openStreams(d) === 3, 10_000)).toBe(true);
    gone.stream.cancel();
    expect(await gone.ended).toBe(status.CANCELLED);
    expect(await waitFor(() => d.logs.some((l) => l['rpc'] === 'GetContainerEvents' && l['outcome'] === 'CANCELLED' && l['subscribers'] === 2), 10_000)).toBe(true);

    const cfg = podConfig();
    const id = await d.rpc.run(cfg);
    await d.rpc.stop(id);
    await d.rpc.remove(id);
    const want = [ContainerEventType.CONTAINER_CREATED_EVENT, ContainerEventType.CONTAINER_STARTED_EVENT, ContainerEventType.CONTAINER_STOPPED_EVENT, ContainerEventType.CONTAINER_DELETED_EVENT];
    for (const s of [a, b]) {
      expect(await waitFor(() => s.events.length >= 4, 10_000)).toBe(true);
      expect(s.events.map((e) => e.containerEventType)).toEqual(want);
      for (const e of s.events) {
        expect(e.containerId).toBe(id);
        expect(e.podSandboxStatus?.id).toBe(id);
        expect(e.podSandboxStatus?.metadata?.name).toBe(cfg.metadata!.name);
        expect(e.createdAt).toBeGreaterThan(0n);
      }
      expect(s.events[1].podSandboxStatus?.network?.ip).not.toBe('');
    }
    expect(gone.events).toEqual([]);

    // The daemon stops promptly with streams open, ending them cleanly.
    expect(await d.stop()).toBe(0);
    expect(await a.ended).toBe(status.OK);
    expect(await b.ended).toBe(status.OK);
  });
});

describe('GetContainerEvents after a failed RunPodSandbox', () => {
  it('sends CREATED then DELETED for the sandbox whose setup failed and was undone', async () => {
    const root = await newRoot();
    const net = testNetwork(root);
    const list = JSON.parse(net.text) as { plugins: unknown[] };
    list.plugins.push({ type: 'fail-json', passDel: true });
    const d = await startDaemon({ root, confFiles: { '10-net.conflist': JSON.stringify(list) }, cni: { bin_dirs: [...TEST_PLUGIN_PATH] } });
    const s = subscribe(d);
    expect(await waitFor(() => openStreams(d) === 1, 10_000)).toBe(true);
    const cfg = podConfig();
    const err = await rpcError(d.rpc.run(cfg));
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(await waitFor(() => s.events.length >= 2, 10_000)).toBe(true);
    expect(s.events.map((e) => e.containerEventType)).toEqual([ContainerEventType.CONTAINER_CREATED_EVENT, ContainerEventType.CONTAINER_DELETED_EVENT]);
    expect(new Set(s.events.map((e) => e.containerId)).size).toBe(1);
    expect(s.events[0].podSandboxStatus?.metadata?.name).toBe(cfg.metadata!.name);
    expect(await d.rpc.list()).toEqual([]);
    s.stream.cancel();
  });
});

describe('leaks', () => {
  it('left no namespace mounts, bridges or processes behind', async () => {
    await expectNothingLeft();
  });
});

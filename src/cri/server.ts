import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import {
  Server,
  ServerCredentials,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type ServiceError,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { ImageServiceService, RuntimeServiceService } from '../gen/runtime/v1/api.js';
import { PodNetworksService as PodNetworksDefinition } from '../gen/podnet/v1/podnetworks.js';
import type { PodNetworksService } from './pod-networks.js';
import type { ContainerService } from './container-service.js';
import { CRIError, invalidArgument, toCRIError, toWireError, unimplemented } from './errors.js';
import { serveContainerEvents, type SandboxEvents } from './events.js';
import type { ImageInfoService } from './image-service.js';
import { clip, quote } from '../util/quote.js';
import { lostMapKey, type LostKey } from './wire-keys.js';
import type { RuntimeInfoService } from './runtime-service.js';
import type { CallContext, SandboxService } from './sandbox-service.js';
import type { SandboxStatsService } from './stats.js';

export interface RPCObserver {
  (rpc: string, durationMs: number, code: status): void;
}

/** What podnetd serves; everything else in RuntimeService answers UNIMPLEMENTED. */
export interface Services {
  sandboxes: SandboxService;
  runtime: RuntimeInfoService;
  images: ImageInfoService;
  containers: ContainerService;
  stats: SandboxStatsService;
  events: SandboxEvents;
  /** podnet.v1.PodNetworks (hot-plug), served on the same socket when given. */
  podNetworks?: PodNetworksService;
  observe?: RPCObserver;
}

const UNIMPLEMENTED_MESSAGE = 'podnet serves pod sandbox networking only; creating, running, exec, attach and port-forward of containers belong to the container runtime';

function statusName(code: status): string {
  return status[code] ?? String(code);
}

/** Fields worth a log line, pulled from whatever request shape the RPC has; each value bounded. */
function requestFields(req: unknown): Record<string, unknown> {
  if (typeof req !== 'object' || req === null) return {};
  const r = req as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  if (typeof r['podSandboxId'] === 'string' && r['podSandboxId']) out['sandbox'] = clip(r['podSandboxId']);
  if (typeof r['runtimeHandler'] === 'string') out['handler'] = clip(r['runtimeHandler']);
  const config = r['config'] as { metadata?: { name?: string; namespace?: string } } | undefined;
  if (config?.metadata) out['pod'] = `${clip(config.metadata.namespace ?? '')}/${clip(config.metadata.name ?? '')}`;
  return out;
}

/** A request still in its wire form; the RPC wrapper decodes it (see rawRequests). */
class RawRequest {
  constructor(
    readonly bytes: Buffer,
    readonly decode: (b: Buffer) => unknown,
  ) {}
}

/**
 * The service definition with every request left as bytes. grpc-js would decode before any
 * handler runs and answer a message that does not decode with INTERNAL, unlogged; decoded in
 * `unary` instead, it is an INVALID_ARGUMENT naming the method, logged and counted like any RPC.
 * Every service the server adds goes through this, so methods added later are covered too.
 */
function rawRequests<S extends ServiceDefinition>(service: S): S {
  const out: Record<string, unknown> = {};
  for (const [key, def] of Object.entries(service)) {
    out[key] = { ...def, requestDeserialize: (b: Buffer) => new RawRequest(b, def.requestDeserialize) };
  }
  return out as S;
}

/** The refusal of a request with a map key the decoded message would lose. */
export function lostKeyError(rpc: string, lost: LostKey): CRIError {
  return invalidArgument(`${rpc}: ${lost.field} key ${quote(lost.key)} is not allowed (not a label or annotation key, and a JavaScript object cannot hold it)`);
}

/** The request message of a call, decoded from its bytes; INVALID_ARGUMENT when it does not decode. */
function decodeRequest(rpc: string, path: string, request: unknown): unknown {
  if (!(request instanceof RawRequest)) return request;
  let decoded: unknown;
  let lost: LostKey | undefined;
  try {
    decoded = request.decode(request.bytes);
    lost = lostMapKey(path, request.bytes);
  } catch (err) {
    throw invalidArgument(`${rpc}: the request is not a valid protobuf message (${clip(err instanceof Error ? err.message : String(err))})`);
  }
  if (lost) throw lostKeyError(rpc, lost);
  return decoded;
}

type Handler<Req, Res> = (req: Req, ctx: CallContext) => Promise<Res> | Res;

/**
 * Wraps one RPC: a request id, an AbortSignal that fires when the client cancels or its deadline
 * passes, one log line with outcome and duration, and errors mapped to gRPC statuses.
 */
/**
 * The handlers still running. A handler outlives its call when the client cancels or its deadline
 * passes (the engine then rolls back on its own): shutdown waits for these, not just for the calls.
 */
export type RunningHandlers = Set<Promise<unknown>>;

function unary<Req, Res>(name: string, log: Logger, observe: RPCObserver | undefined, fn: Handler<Req, Res>, running?: RunningHandlers) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const started = performance.now();
    const requestId = randomBytes(6).toString('hex');
    const ac = new AbortController();
    call.on('cancelled', () => ac.abort(new Error('the client canceled the request')));
    const deadline = call.getDeadline();
    const ms = deadline instanceof Date ? deadline.getTime() - Date.now() : typeof deadline === 'number' && Number.isFinite(deadline) ? deadline - Date.now() : Infinity;
    const timer = Number.isFinite(ms) ? setTimeout(() => ac.abort(new Error('the client deadline passed')), Math.max(0, ms)) : undefined;
    let fields: Record<string, unknown> = { rpc: name, requestId };
    const handled = Promise.resolve()
      .then(() => {
        const req = decodeRequest(name, call.getPath(), call.request) as Req;
        fields = { ...fields, ...requestFields(req) };
        return fn(req, { signal: ac.signal });
      })
      .then(
        (res) => {
          const durationMs = performance.now() - started;
          const extra = name === 'RunPodSandbox' ? { sandbox: (res as { podSandboxId?: string }).podSandboxId } : {};
          log.info({ ...fields, ...extra, durationMs: Math.round(durationMs * 1000) / 1000, outcome: 'OK' }, name);
          observe?.(name, durationMs, status.OK);
          callback(null, res);
        },
        (err: unknown) => {
          const e = toWireError(err);
          const durationMs = performance.now() - started;
          const level = e.code === status.INTERNAL || e.code === status.UNKNOWN ? 'error' : 'warn';
          log[level]({ ...fields, durationMs: Math.round(durationMs * 1000) / 1000, outcome: statusName(e.code), err: e.message }, name);
          observe?.(name, durationMs, e.code);
          const se: Partial<ServiceError> = { code: e.code, details: e.message, message: e.message };
          callback(se, null);
        },
      )
      .finally(() => {
        if (timer) clearTimeout(timer);
        running?.delete(handled);
      });
    running?.add(handled);
  };
}

/** The RuntimeService implementation object for grpc-js. */
export function buildRuntimeService(s: Services, log: Logger, running?: RunningHandlers): UntypedServiceImplementation {
  const u = <Req, Res>(name: string, fn: Handler<Req, Res>) => unary(name, log, s.observe, fn, running);
  const impl: UntypedServiceImplementation = {};
  for (const [key, def] of Object.entries(RuntimeServiceService)) {
    const rpc = def.path.slice(def.path.lastIndexOf('/') + 1);
    impl[key] = def.responseStream
      ? stream(rpc, log, (call: ServerWritableStream<unknown, unknown>) => {
          call.emit('error', { code: status.UNIMPLEMENTED, details: `${rpc}: ${UNIMPLEMENTED_MESSAGE}` });
        })
      : u(rpc, () => {
          throw unimplemented(`${rpc}: ${UNIMPLEMENTED_MESSAGE}`);
        });
  }
  Object.assign(impl, {
    version: u('Version', () => s.runtime.version()),
    status: u('Status', (req: Parameters<RuntimeInfoService['status']>[0]) => s.runtime.status(req)),
    updateRuntimeConfig: u('UpdateRuntimeConfig', async (req: Parameters<RuntimeInfoService['updateRuntimeConfig']>[0]) => {
      await s.runtime.updateRuntimeConfig(req);
      return {};
    }),
    runtimeConfig: u('RuntimeConfig', () => s.runtime.runtimeConfig()),
    runPodSandbox: u('RunPodSandbox', (req: Parameters<SandboxService['runPodSandbox']>[0], ctx) => s.sandboxes.runPodSandbox(req, ctx)),
    stopPodSandbox: u('StopPodSandbox', async (req: Parameters<SandboxService['stopPodSandbox']>[0], ctx) => {
      await s.sandboxes.stopPodSandbox(req, ctx);
      return {};
    }),
    removePodSandbox: u('RemovePodSandbox', async (req: Parameters<SandboxService['removePodSandbox']>[0], ctx) => {
      await s.sandboxes.removePodSandbox(req, ctx);
      return {};
    }),
    podSandboxStatus: u('PodSandboxStatus', (req: Parameters<SandboxService['podSandboxStatus']>[0], ctx) => s.sandboxes.podSandboxStatus(req, ctx)),
    listPodSandbox: u('ListPodSandbox', (req: Parameters<SandboxService['listPodSandbox']>[0]) => s.sandboxes.listPodSandbox(req)),
    listContainers: u('ListContainers', () => s.containers.listContainers()),
    streamContainers: stream('StreamContainers', log, endEmpty),
    containerStatus: u('ContainerStatus', (req: Parameters<ContainerService['containerStatus']>[0]) => s.containers.containerStatus(req)),
    containerStats: u('ContainerStats', (req: Parameters<ContainerService['containerStats']>[0]) => s.containers.containerStats(req)),
    listContainerStats: u('ListContainerStats', () => s.containers.listContainerStats()),
    streamContainerStats: stream('StreamContainerStats', log, endEmpty),
    podSandboxStats: u('PodSandboxStats', (req: Parameters<SandboxStatsService['podSandboxStats']>[0]) => s.stats.podSandboxStats(req)),
    listPodSandboxStats: u('ListPodSandboxStats', (req: Parameters<SandboxStatsService['listPodSandboxStats']>[0]) => s.stats.listPodSandboxStats(req)),
    getContainerEvents: stream('GetContainerEvents', log, serveContainerEvents(s.events, log)),
  });
  return impl;
}

/**
 * Wraps a server-streaming RPC: its request is decoded as `unary` decodes one, and a message that
 * does not decode ends the stream with INVALID_ARGUMENT before the handler sees it.
 */
function stream<Req, Res>(name: string, log: Logger, fn: (call: ServerWritableStream<Req, Res>) => void) {
  return (call: ServerWritableStream<Req, Res>): void => {
    try {
      call.request = decodeRequest(name, call.getPath(), call.request) as Req;
    } catch (err) {
      const e = toCRIError(err);
      log.warn({ rpc: name, outcome: statusName(e.code), err: e.message }, name);
      call.emit('error', { code: e.code, details: e.message });
      return;
    }
    fn(call);
  };
}

/** A list stream with nothing in it: the stream ends at once, as the list RPC answers empty. */
const endEmpty = (call: ServerWritableStream<unknown, unknown>): void => {
  call.end();
};

/** The ImageService implementation object: a runtime with no images. */
export function buildImageService(s: Services, log: Logger, running?: RunningHandlers): UntypedServiceImplementation {
  const u = <Req, Res>(name: string, fn: Handler<Req, Res>) => unary(name, log, s.observe, fn, running);
  return {
    listImages: u('ListImages', () => s.images.listImages()),
    streamImages: stream('StreamImages', log, endEmpty),
    imageStatus: u('ImageStatus', (req: Parameters<ImageInfoService['imageStatus']>[0]) => s.images.imageStatus(req)),
    pullImage: u('PullImage', () => s.images.pullImage()),
    removeImage: u('RemoveImage', () => s.images.removeImage()),
    imageFsInfo: u('ImageFsInfo', () => s.images.imageFsInfo()),
  };
}

/** podnet.v1.PodNetworks: hot-plug, through the same wrapper (decoding, logs, errors) as the CRI. */
export function buildPodNetworksService(p: PodNetworksService, log: Logger, observe: RPCObserver | undefined, running?: RunningHandlers): UntypedServiceImplementation {
  const u = <Req, Res>(name: string, fn: Handler<Req, Res>) => unary(name, log, observe, fn, running);
  return {
    attachNetwork: u('AttachNetwork', (req: Parameters<PodNetworksService['attachNetwork']>[0], ctx) => p.attachNetwork(req, ctx)),
    detachNetwork: u('DetachNetwork', (req: Parameters<PodNetworksService['detachNetwork']>[0], ctx) => p.detachNetwork(req, ctx)),
    listNetworks: u('ListNetworks', (req: Parameters<PodNetworksService['listNetworks']>[0]) => p.listNetworks(req)),
  };
}

export class SocketInUseError extends Error {}

/** Is a daemon answering on this socket? A refused or missing socket means no. */
export function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/**
 * Makes the socket path ours: parent dir created, a stale socket from a dead daemon removed, a
 * live one (or a file that is not a socket) refused.
 */
export async function prepareSocket(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  let st;
  try {
    st = await lstat(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new SocketInUseError(`${path} exists and is not a socket; refusing to replace it`);
  if (await socketAlive(path)) throw new SocketInUseError(`another daemon is already serving on ${path}`);
  await rm(path, { force: true });
}

export class CRIServer {
  private readonly server = new Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  private readonly running: RunningHandlers = new Set();

  constructor(services: Services, log: Logger) {
    this.serve(RuntimeServiceService, buildRuntimeService(services, log, this.running));
    this.serve(ImageServiceService, buildImageService(services, log, this.running));
    if (services.podNetworks) this.serve(PodNetworksDefinition, buildPodNetworksService(services.podNetworks, log, services.observe, this.running));
  }

  /** Every service is added through here: its requests reach `unary` as bytes (rawRequests). */
  private serve(service: ServiceDefinition, impl: UntypedServiceImplementation): void {
    this.server.addService(rawRequests(service), impl);
  }

  async listen(socketPath: string): Promise<void> {
    await prepareSocket(socketPath);
    await new Promise<void>((resolve, reject) => {
      this.server.bindAsync(`unix://${socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    });
    await chmod(socketPath, 0o660);
  }

  /** Stops accepting, lets in-flight RPCs finish, and the handlers of canceled ones, then resolves. */
  async shutdown(): Promise<void> {
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    await Promise.allSettled([...this.running]);
  }

  forceShutdown(): void {
    this.server.forceShutdown();
  }
}

export { CRIError };

import type { Logger } from 'pino';
import type {
  ListPodSandboxRequest,
  ListPodSandboxResponse,
  PodSandboxStatusRequest,
  PodSandboxStatusResponse,
  RemovePodSandboxRequest,
  RunPodSandboxRequest,
  RunPodSandboxResponse,
  StopPodSandboxRequest,
} from '../gen/runtime/v1/api.js';
import type { PodNetworkEngine } from '../engine/types.js';
import { liveAttachments } from '../engine/network-status.js';
import type { DaemonConfig } from './config.js';
import { listPodSandbox } from './list-pod-sandbox.js';
import { podSandboxStatus } from './pod-sandbox-status.js';
import { runPodSandbox } from './run-pod-sandbox.js';
import { criFacts, lookup } from './sandbox-lookup.js';
import type { SandboxNetworkView } from './stats.js';
import { removePodSandbox, stopPodSandbox } from './stop-pod-sandbox.js';

/** The time source, injected so tests can pin created_at. */
export interface Clock {
  /** Nanoseconds since the epoch. */
  nowNs(): bigint;
}

export const systemClock: Clock = { nowNs: () => BigInt(Date.now()) * 1_000_000n };

/** Per-call context from the RPC layer: aborts when the client cancels or its deadline passes. */
export interface CallContext {
  signal: AbortSignal;
}

export interface SandboxServiceDeps {
  cfg: DaemonConfig;
  engine: PodNetworkEngine;
  log: Logger;
  clock?: Clock;
}

/** What each RPC of the sandbox service works with. */
export interface SandboxContext {
  cfg: DaemonConfig;
  engine: PodNetworkEngine;
  log: Logger;
  clock: Clock;
}

/**
 * The pod sandbox RPCs: each translates its CRI message into engine calls (one file per RPC, read
 * top to bottom). Errors are mapped to gRPC statuses once, by the gRPC layer (toCRIError).
 */
export class SandboxService {
  private readonly ctx: SandboxContext;

  constructor(deps: SandboxServiceDeps) {
    this.ctx = { cfg: deps.cfg, engine: deps.engine, log: deps.log, clock: deps.clock ?? systemClock };
  }

  runPodSandbox(req: RunPodSandboxRequest, call: CallContext): Promise<RunPodSandboxResponse> {
    return runPodSandbox(this.ctx, req, call);
  }

  stopPodSandbox(req: StopPodSandboxRequest, call: CallContext): Promise<void> {
    return stopPodSandbox(this.ctx, req, call);
  }

  removePodSandbox(req: RemovePodSandboxRequest, call: CallContext): Promise<void> {
    return removePodSandbox(this.ctx, req, call);
  }

  podSandboxStatus(req: PodSandboxStatusRequest, call: CallContext): PodSandboxStatusResponse {
    return podSandboxStatus(this.ctx, req, call);
  }

  listPodSandbox(req: ListPodSandboxRequest): ListPodSandboxResponse {
    return listPodSandbox(this.ctx, req);
  }

  /** The CRI door's sandboxes (or one, by full id or unique prefix) as the stats RPCs read them. */
  networkViews(idOrPrefix?: string): SandboxNetworkView[] {
    const recs = idOrPrefix === undefined ? this.ctx.engine.list({ door: 'cri' }).filter((r) => r.phase !== 'creating') : [lookup(this.ctx.engine, idOrPrefix, true)!];
    return recs.map((rec) => {
      const { config } = criFacts(rec);
      return {
        id: rec.id,
        metadata: { ...rec.metadata, attempt: rec.metadata.attempt ?? 0 },
        labels: (config['labels'] ?? {}) as Record<string, string>,
        annotations: (config['annotations'] ?? {}) as Record<string, string>,
        ready: rec.phase === 'ready',
        hostNetwork: rec.hostNetwork,
        netnsPath: rec.netnsPath,
        interfaces: liveAttachments(rec).map((a) => a.ifName).filter((n) => n !== 'lo'),
      };
    });
  }
}

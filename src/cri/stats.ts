import type { Logger } from 'pino';
import type {
  ListPodSandboxStatsRequest,
  ListPodSandboxStatsResponse,
  NetworkInterfaceUsage,
  NetworkUsage,
  PodSandboxMetadata,
  PodSandboxStats,
  PodSandboxStatsRequest,
  PodSandboxStatsResponse,
} from '../gen/runtime/v1/api.js';
import { parseNetDev, type InterfaceCounters, type NetDevReader } from '../netns/netdev.js';
import { failedPrecondition } from './errors.js';
import { Semaphore } from '../engine/locks.js';
import { DEFAULT_IFNAME } from '../engine/types.js';
import { systemClock, type Clock } from './sandbox-service.js';

/** What the stats code needs to know of one sandbox. */
export interface SandboxNetworkView {
  id: string;
  metadata: PodSandboxMetadata;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  ready: boolean;
  hostNetwork: boolean;
  netnsPath: string;
  /** Every attachment's interface but lo, in attachment order. */
  interfaces: string[];
}

export interface SandboxNetworkSource {
  /** One sandbox by id or unique prefix (NOT_FOUND when unknown), or every known one. */
  networkViews(idOrPrefix?: string): SandboxNetworkView[];
}

export interface SandboxStatsDeps {
  sandboxes: SandboxNetworkSource;
  reader: NetDevReader;
  log: Logger;
  clock?: Clock;
  /** Namespace reads at once for a list (each may start a process with spawner = "inline"). */
  concurrency?: number;
}

function usage(c: InterfaceCounters): NetworkInterfaceUsage {
  return { name: c.name, rxBytes: { value: c.rxBytes }, rxErrors: { value: c.rxErrors }, txBytes: { value: c.txBytes }, txErrors: { value: c.txErrors } };
}

/**
 * PodSandboxStats and ListPodSandboxStats: the network half of a pod's statistics, read from inside
 * its namespace. CPU, memory and processes belong to the container runtime and are left unset.
 */
export class SandboxStatsService {
  private readonly clock: Clock;
  private readonly slots: Semaphore;

  constructor(private readonly deps: SandboxStatsDeps) {
    this.clock = deps.clock ?? systemClock;
    this.slots = new Semaphore(deps.concurrency ?? 8);
  }

  async podSandboxStats(req: PodSandboxStatsRequest): Promise<PodSandboxStatsResponse> {
    const [view] = this.deps.sandboxes.networkViews(req.podSandboxId);
    if (!view) return { stats: undefined };
    let network: NetworkUsage | undefined;
    try {
      network = await this.network(view);
    } catch (err) {
      throw failedPrecondition(`cannot read the network statistics of sandbox ${view.id}: ${(err as Error).message}`);
    }
    return { stats: this.stats(view, network) };
  }

  /** Ready sandboxes only; one whose namespace cannot be read is listed without network stats. */
  async listPodSandboxStats(req: ListPodSandboxStatsRequest): Promise<ListPodSandboxStatsResponse> {
    const f = req.filter;
    const views = this.deps.sandboxes.networkViews().filter((v) => {
      if (!v.ready) return false;
      if (f?.id && !v.id.startsWith(f.id)) return false;
      return !f || Object.entries(f.labelSelector).every(([k, want]) => v.labels[k] === want);
    });
    const stats = await Promise.all(
      views.map((v) =>
        this.slots.run(async () => {
          try {
            return this.stats(v, await this.network(v));
          } catch (err) {
            this.deps.log.warn({ sandbox: v.id, err: (err as Error).message }, 'cannot read sandbox network statistics; listed without them');
            return this.stats(v, undefined);
          }
        }),
      ),
    );
    return { stats };
  }

  private stats(v: SandboxNetworkView, network: NetworkUsage | undefined): PodSandboxStats {
    return {
      attributes: { id: v.id, metadata: { ...v.metadata }, labels: v.labels, annotations: v.annotations },
      linux: network ? { network } : undefined,
    };
  }

  /** A host-network or stopped sandbox has no namespace of its own to measure. */
  private async network(v: SandboxNetworkView): Promise<NetworkUsage | undefined> {
    if (!v.ready || v.hostNetwork || !v.netnsPath) return undefined;
    const counters = parseNetDev(await this.deps.reader.readNetDev(v.netnsPath));
    const timestamp = this.clock.nowNs();
    const interfaces = v.interfaces.flatMap((name) => {
      const c = counters.get(name);
      return c ? [usage(c)] : [];
    });
    return { timestamp, defaultInterface: interfaces.find((i) => i.name === DEFAULT_IFNAME), interfaces };
  }
}

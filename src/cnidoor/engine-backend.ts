/**
 * The CNI door's backend on the pod-network engine: one runtime call becomes one engine call on
 * a namespace the runtime owns. The door has checked every field; what is left here is what the
 * call means in pod-network terms, and the runtime's retry rules (ADD and DEL are repeated).
 */
import type { Logger } from 'pino';
import type { Result } from '../cni/result.js';
import { EngineError } from '../engine/errors.js';
import type { HotplugEngine, NetworkSelector, PodNetworkEngine, SetupRequest } from '../engine/types.js';
import type { AttachmentCall, CNIDoorBackend, DelegateCall, GCCall, NetworkCall, StatusCall } from './backend.js';
import { delegateAdd, delegateDel } from './delegate.js';
import { badEnv, CNIDoorError, DoorErrorCode, quote, toCNIError } from './errors.js';

export interface EngineBackendDeps {
  /** The engine, hot-plug included: /delegate attaches one network to a running pod. */
  engine: PodNetworkEngine & HotplugEngine;
  /** Resolves once the engine's recovery has finished (at once when none runs). */
  recovered: () => Promise<void>;
  /** Recovery has finished and the networks are loaded (what /readyz answers). */
  ready: () => boolean;
  /** Whether CNI_NETNS is a network namespace podnetd can enter (a missing one is the runtime's bad env, code 4). */
  netnsExists: (path: string) => Promise<boolean>;
  log: Logger;
}

/** The cluster network a shim config names: its `network`, else its `runtimeHandler`'s (default ''). */
export function selectorOf(call: NetworkCall): NetworkSelector {
  return call.network !== undefined ? { network: call.network } : { runtimeHandler: call.runtimeHandler ?? '' };
}

/** A client-keyed map as a null-prototype object: no key of the runtime's can reach a prototype. */
function toRecord(m: ReadonlyMap<string, string>): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const [k, v] of m) out[k] = v;
  return out;
}

export class EngineBackend implements CNIDoorBackend {
  constructor(private readonly deps: EngineBackendDeps) {}

  ready(): boolean {
    return this.deps.ready();
  }

  /** ADD: the pod's networks on the runtime's namespace; a retry of a finished ADD gets the same result. */
  async add(call: AttachmentCall, signal: AbortSignal): Promise<Result> {
    if (call.netns === '') throw badEnv('CNI_NETNS is required for ADD');
    const pod = call.pod;
    if (!pod) throw badEnv('CNI_ARGS must carry K8S_POD_NAMESPACE and K8S_POD_NAME for ADD');
    if (pod.uid === '') throw badEnv('CNI_ARGS must carry K8S_POD_UID for ADD');
    if (!(await this.deps.netnsExists(call.netns))) throw badEnv(`CNI_NETNS ${quote(call.netns)} is not a network namespace`);
    const rc = call.runtimeConfig;
    const req: SetupRequest = {
      id: call.containerID,
      door: 'cni',
      pod: { namespace: pod.namespace, name: pod.name, uid: pod.uid },
      netns: { owner: 'runtime', path: call.netns },
      networks: selectorOf(call),
      // The runtime runs loopback itself on this door (containerd calls it separately).
      loopback: false,
      clusterIfName: call.ifName,
      annotations: toRecord(rc.podAnnotations),
      ...(rc.portMappings.length > 0 ? { portMappings: rc.portMappings.map((p) => ({ hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol, ...(p.hostIP ? { hostIP: p.hostIP } : {}) })) } : {}),
      ...(rc.bandwidth ? { bandwidth: rc.bandwidth } : {}),
      ...(rc.dns ? { dns: rc.dns } : {}),
      ...(rc.cgroupPath ? { cgroupPath: rc.cgroupPath } : {}),
      cniArgs: [...call.args],
    };
    try {
      const out = await this.deps.engine.setUp(req, signal);
      if (!out.result) throw new Error(`sandbox ${call.containerID} was set up without a cluster network result`);
      return out.result;
    } catch (err) {
      const e = toCNIError(err, 'config');
      if (err instanceof EngineError && err.kind === 'already-exists') return this.repeatedAdd(call, e);
      throw e;
    }
  }

  /**
   * An ADD of an id podnet already has: the runtime's retry of an ADD that finished (its answer
   * was lost) gets the recorded result; anything else is refused.
   */
  private repeatedAdd(call: AttachmentCall, refusal: CNIDoorError): Result {
    const rec = this.deps.engine.get(call.containerID);
    if (!rec) throw new CNIDoorError(DoorErrorCode.TryAgainLater, `sandbox ${call.containerID} is being torn down`, 'retry the ADD');
    if (rec.door !== 'cni') throw badEnv(`CNI_CONTAINERID ${call.containerID} is a sandbox of podnet's CRI door, not of this runtime`);
    if (rec.netnsPath !== call.netns) throw badEnv(`sandbox ${call.containerID} is already set up on another network namespace (${rec.netnsPath})`);
    if (rec.clusterIfName !== call.ifName) {
      throw badEnv(`sandbox ${call.containerID} is already set up with its cluster network on ${rec.clusterIfName}; podnet sets up all of a pod's networks in one ADD`);
    }
    if (rec.phase === 'creating') throw new CNIDoorError(DoorErrorCode.TryAgainLater, `sandbox ${call.containerID} is still being set up`, 'retry the ADD');
    if (rec.phase !== 'ready') throw refusal;
    const result = rec.results.find((r) => r.ifName === rec.clusterIfName)?.result as Result | undefined;
    if (!result) throw new CNIDoorError(DoorErrorCode.Internal, 'internal error in podnetd', `sandbox ${call.containerID} has no recorded result for ${rec.clusterIfName}`);
    this.deps.log.info({ door: 'cni', sandbox: call.containerID }, 'repeated ADD of a ready sandbox: answered the recorded result');
    return result;
  }

  /**
   * DEL: everything the pod holds is released and its record forgotten, from the record alone
   * (the namespace and prevResult may be gone). An id of the CRI door is not this runtime's: left alone.
   */
  async del(call: AttachmentCall): Promise<void> {
    await this.deps.recovered();
    if (!this.mine(call)) return;
    try {
      await this.deps.engine.tearDown(call.containerID, { forget: true });
    } catch (err) {
      // The record is kept: the runtime's retry (or GC) runs the DEL again.
      throw toCNIError(err, 'env');
    }
  }

  async check(call: AttachmentCall, signal: AbortSignal): Promise<void> {
    await this.deps.recovered();
    const rec = this.deps.engine.get(call.containerID);
    if (!rec || rec.door !== 'cni') throw new CNIDoorError(DoorErrorCode.UnknownContainer, `no sandbox ${call.containerID} set up through the CNI door`);
    try {
      await this.deps.engine.check(call.containerID, signal);
    } catch (err) {
      throw toCNIError(err, 'env');
    }
  }

  /** GC (1.1.0): this door's pods on the call's networks that the runtime no longer lists. */
  async gc(call: GCCall): Promise<void> {
    let report;
    try {
      report = await this.deps.engine.gc({
        door: 'cni',
        networks: selectorOf(call),
        validAttachments: call.validAttachments.map((a) => ({ containerID: a.containerID, ifname: a.ifName })),
      });
    } catch (err) {
      throw toCNIError(err);
    }
    if (report.errors.length > 0) throw new CNIDoorError(DoorErrorCode.TryAgainLater, `garbage collection did not release everything (${report.errors.length} failed)`, report.errors.join('; ').slice(0, 4096));
  }

  /** STATUS (1.1.0): whether a pod could be set up on the call's networks now. */
  async status(call: StatusCall): Promise<void> {
    if (!this.deps.ready()) throw new CNIDoorError(DoorErrorCode.PluginNotAvailable, 'podnetd is still recovering its sandboxes');
    const s = this.deps.engine.networkReadiness(selectorOf(call));
    if (!s.ready) throw new CNIDoorError(DoorErrorCode.PluginNotAvailable, s.message);
    return Promise.resolve();
  }

  delegateAdd(call: DelegateCall, signal: AbortSignal): Promise<Result> {
    return delegateAdd(this.deps.engine, call, signal);
  }

  delegateDel(call: DelegateCall, signal: AbortSignal): Promise<void> {
    return delegateDel(this.deps.engine, call, signal);
  }

  /** Whether a DEL's id is a pod of this door (unknown ids are fine: DEL of them succeeds). */
  private mine(call: AttachmentCall): boolean {
    const rec = this.deps.engine.get(call.containerID);
    if (!rec) return false;
    if (rec.door !== 'cni') {
      this.deps.log.warn({ door: 'cni', sandbox: call.containerID }, 'DEL of a sandbox of the CRI door: left alone');
      return false;
    }
    if (rec.clusterIfName !== call.ifName) {
      this.deps.log.warn({ door: 'cni', sandbox: call.containerID, ifName: call.ifName, clusterIfName: rec.clusterIfName }, 'DEL of an interface podnet did not set up as the cluster network: nothing to do');
      return false;
    }
    return true;
  }
}

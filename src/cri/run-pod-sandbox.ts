import { randomBytes } from 'node:crypto';
import { PodSandboxConfig, type RunPodSandboxRequest, type RunPodSandboxResponse } from '../gen/runtime/v1/api.js';
import type { SetupRequest } from '../engine/types.js';
import type { CallContext, SandboxContext } from './sandbox-service.js';
import { validatePodConfig } from './validate.js';

function newSandboxID(): string {
  return randomBytes(32).toString('hex');
}

/**
 * A RunPodSandbox request in engine terms: everything the client sent is checked (CRIErrors),
 * then the pod's networks on a namespace podnet makes, loopback beside the cluster network,
 * chosen by the runtime handler. RunPodSandbox and `podnet explain` both build their setup here.
 */
export function podSetupRequest(req: RunPodSandboxRequest, id: string, createdAtNs: string): SetupRequest {
  const pod = validatePodConfig(req.config);
  return {
    id,
    door: 'cri',
    pod: pod.metadata,
    netns: { owner: 'podnet' },
    hostNetwork: pod.hostNetwork,
    networks: { runtimeHandler: req.runtimeHandler },
    loopback: true,
    annotations: pod.annotations,
    portMappings: pod.portMappings,
    ...(pod.bandwidth ? { bandwidth: pod.bandwidth } : {}),
    ...(pod.dns ? { dns: pod.dns } : {}),
    ...(pod.cgroupParent ? { cgroupPath: pod.cgroupParent } : {}),
    cri: { config: PodSandboxConfig.toJSON(req.config!) as Record<string, unknown>, createdAt: createdAtNs },
  };
}

/**
 * RunPodSandbox: the pod's networks on a namespace podnet makes, loopback beside the cluster
 * network, chosen by the runtime handler; host-network pods are only recorded.
 */
export async function runPodSandbox(s: SandboxContext, req: RunPodSandboxRequest, call: CallContext): Promise<RunPodSandboxResponse> {
  // 1. Everything the client sent is checked before anything exists.
  const setup = podSetupRequest(req, newSandboxID(), s.clock.nowNs().toString());
  // 2. The engine resolves the networks, records, makes the namespace, ADDs; a failure undoes it all.
  await s.engine.setUp(setup, call.signal);
  return { podSandboxId: setup.id };
}

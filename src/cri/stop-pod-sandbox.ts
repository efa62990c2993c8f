import type { RemovePodSandboxRequest, StopPodSandboxRequest } from '../gen/runtime/v1/api.js';
import { lookup } from './sandbox-lookup.js';
import type { CallContext, SandboxContext } from './sandbox-service.js';

/** StopPodSandbox: DEL every network, remove the namespace; the sandbox stays, notready. Idempotent. */
export async function stopPodSandbox(s: SandboxContext, req: StopPodSandboxRequest, _call: CallContext): Promise<void> {
  const found = lookup(s.engine, req.podSandboxId, false);
  if (!found) return;
  await s.engine.tearDown(found.id);
}

/** RemovePodSandbox: a stop if one is still due, then the sandbox is forgotten. Idempotent. */
export async function removePodSandbox(s: SandboxContext, req: RemovePodSandboxRequest, _call: CallContext): Promise<void> {
  const found = lookup(s.engine, req.podSandboxId, false);
  if (!found) return;
  await s.engine.tearDown(found.id, { forget: true });
}

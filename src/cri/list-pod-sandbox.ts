import type { ListPodSandboxRequest, ListPodSandboxResponse, PodSandbox } from '../gen/runtime/v1/api.js';
import { criFacts, toState } from './sandbox-lookup.js';
import type { SandboxContext } from './sandbox-service.js';

/** ListPodSandbox: the CRI door's sandboxes, filtered by id prefix, state and labels, oldest first. */
export function listPodSandbox(s: SandboxContext, req: ListPodSandboxRequest): ListPodSandboxResponse {
  const f = req.filter;
  const items: PodSandbox[] = [];
  for (const rec of s.engine.list({ door: 'cri' })) {
    // A sandbox still being created has no id the client knows yet.
    if (rec.phase === 'creating') continue;
    if (f?.id && !rec.id.startsWith(f.id)) continue;
    // A present-but-empty state filter means READY (0): proto3 does not send the zero.
    if (f?.state && toState(rec) !== f.state.state) continue;
    const { config, createdAt } = criFacts(rec);
    const labels = (config['labels'] ?? {}) as Record<string, string>;
    if (f && Object.entries(f.labelSelector).some(([k, v]) => !Object.hasOwn(labels, k) || labels[k] !== v)) continue;
    items.push({
      id: rec.id,
      metadata: { ...rec.metadata, attempt: rec.metadata.attempt ?? 0 },
      state: toState(rec),
      createdAt: BigInt(createdAt),
      labels,
      annotations: (config['annotations'] ?? {}) as Record<string, string>,
      runtimeHandler: rec.runtimeHandler,
    });
  }
  items.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  return { items };
}

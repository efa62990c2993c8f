import { PodSandboxState } from '../gen/runtime/v1/api.js';
import type { CRIFacts, Door, PodNetworkEngine } from '../engine/types.js';
import { isRecordID, type SandboxRecord } from '../engine/store.js';
import { quote } from '../util/quote.js';
import { invalidArgument, notFound } from './errors.js';

/** The longest id of another runtime's sandbox that Stop/Remove accept as "not ours, so done". */
const MAX_FOREIGN_ID = 256;

/**
 * A CRI sandbox by full id or unique prefix, among the CRI door's pods only (a kubelet never sees
 * the CNI door's). NOT_FOUND when required, else undefined (Stop/Remove are idempotent).
 */
export function lookup(engine: PodNetworkEngine, idOrPrefix: string, required: boolean, door: Door | 'any' = 'cri'): Readonly<SandboxRecord> | undefined {
  if (!idOrPrefix) throw invalidArgument('pod_sandbox_id is required');
  if (door === 'any') {
    // podnet's own API (hot-plug) serves the pods of both doors: any record id (a CNI_CONTAINERID).
    if (!isRecordID(idOrPrefix)) throw invalidArgument(`pod_sandbox_id ${quote(idOrPrefix)} is not a sandbox id (letters, digits, "_", "." and "-", up to 128 characters)`);
  } else if (!/^[0-9a-f]{1,64}$/.test(idOrPrefix)) {
    // Never one of our ids, so never one of our sandboxes: its Stop and Remove are done already
    // (the CRI's idempotence; critest sends a UUID). Something no runtime would call an id is
    // still refused.
    if (!required && idOrPrefix.length <= MAX_FOREIGN_ID && !/[\x00-\x1f\x7f]/.test(idOrPrefix)) return undefined;
    throw invalidArgument(`pod_sandbox_id ${quote(idOrPrefix)} is not a sandbox id (hex, up to 64 characters)`);
  }
  let rec = engine.resolve(idOrPrefix, door === 'any' ? undefined : door);
  // A sandbox still being created has no id the client knows yet.
  if (rec?.phase === 'creating') rec = undefined;
  if (!rec && required) throw notFound(`sandbox ${quote(idOrPrefix)} not found`);
  return rec;
}

export function toState(rec: Readonly<SandboxRecord>): PodSandboxState {
  return rec.phase === 'ready' ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY;
}

/** The CRI side of a record (every record of this door has one). */
export function criFacts(rec: Readonly<SandboxRecord>): CRIFacts {
  return rec.cri ?? { config: {}, createdAt: '0' };
}

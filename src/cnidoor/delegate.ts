/**
 * `/delegate` (multus' hot-plug of one network onto a running pod, issue 14). Not served yet:
 * both verbs answer a clear CNI error until hot-plug lands here.
 */
import type { Result } from '../cni/result.js';
import type { DelegateCall } from './backend.js';
import { CNIDoorError, DoorErrorCode } from './errors.js';

const notYet = (): CNIDoorError => new CNIDoorError(DoorErrorCode.InvalidEnvironment, 'hot-plug through /delegate is not available yet');

export function delegateAdd(_call: DelegateCall, _signal: AbortSignal): Promise<Result> {
  return Promise.reject(notYet());
}

export function delegateDel(_call: DelegateCall, _signal: AbortSignal): Promise<void> {
  return Promise.reject(notYet());
}

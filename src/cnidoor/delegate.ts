// POST /delegate (multus-dynamic-networks-controller's hot-plug call) as engine calls: ADD attaches
// the one network the call's config describes to the running pod CNI_CONTAINERID names, on
// CNI_IFNAME, with the interfaceAttributes; DEL detaches that interface.
import { ErrorCode } from '../cni/errors.js';
import type { Result } from '../cni/result.js';
import { EngineError, toEngineError } from '../engine/errors.js';
import type { HotplugEngine, PodNetworkEngine } from '../engine/types.js';
import type { JSONObject } from '../util/json.js';
import type { DelegateCall } from './backend.js';
import { CNIDoorError, DoorErrorCode } from './errors.js';

/** What /delegate needs of the engine. */
export type DelegateEngine = Pick<PodNetworkEngine, 'get'> & Pick<HotplugEngine, 'attach' | 'detach'>;

/** An engine failure as the CNI error the caller sees (the spec's codes; 999 for our own bugs). */
function toDoorError(err: unknown): CNIDoorError {
  if (err instanceof CNIDoorError) return err;
  const e = toEngineError(err);
  const code: number =
    e.kind === 'plugin-failed'
      ? (e.cniCode ?? DoorErrorCode.Internal)
      : e.kind === 'not-found'
        ? ErrorCode.UnknownContainer
        : e.kind === 'invalid-request'
          ? ErrorCode.InvalidNetworkConfig
          : e.kind === 'failed-precondition' || e.kind === 'already-exists' || e.kind === 'unavailable' || e.kind === 'deadline-exceeded' || e.kind === 'canceled'
            ? ErrorCode.TryAgainLater
            : DoorErrorCode.Internal;
  return new CNIDoorError(code, e.message);
}

/** The interfaceAttributes as the networks annotation's element (interface from CNI_IFNAME). */
function element(call: DelegateCall): JSONObject {
  const el: JSONObject = { interface: call.ifName };
  const attrs = call.interfaceAttributes;
  if (attrs?.ips.length) el['ips'] = attrs.ips;
  if (attrs?.mac) el['mac'] = attrs.mac;
  if (attrs && attrs.cniArgs.size > 0) el['cni-args'] = Object.fromEntries(attrs.cniArgs);
  return el;
}

/** ADD: the call's network onto the running pod; answers its CNI result (the door wraps it in {"Result": ...}). */
export async function delegateAdd(engine: DelegateEngine, call: DelegateCall, signal: AbortSignal): Promise<Result> {
  const rec = engine.get(call.containerID);
  if (!rec || rec.phase === 'creating') throw new CNIDoorError(ErrorCode.UnknownContainer, `no sandbox ${call.containerID}`);
  // The runtime's namespace is where the pod is: a delegate for another namespace is a mistake.
  if (call.netns !== '' && rec.netnsPath !== '' && call.netns !== rec.netnsPath) {
    throw new CNIDoorError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${JSON.stringify(call.netns.slice(0, 256))} is not the network namespace of sandbox ${call.containerID}`);
  }
  try {
    return (await engine.attach(call.containerID, { config: call.config, element: element(call) }, signal)).result;
  } catch (err) {
    throw toDoorError(err);
  }
}

/** DEL: the interface off the pod. Idempotent, as CNI DEL is: an unknown pod or interface, or a pod already stopped, is done. */
export async function delegateDel(engine: DelegateEngine, call: DelegateCall, signal: AbortSignal): Promise<void> {
  const rec = engine.get(call.containerID);
  if (!rec || rec.phase !== 'ready' || !rec.attachments.some((a) => a.ifName === call.ifName)) return;
  try {
    await engine.detach(call.containerID, call.ifName, signal);
  } catch (err) {
    if (err instanceof EngineError && err.kind === 'not-found') return;
    throw toDoorError(err);
  }
}

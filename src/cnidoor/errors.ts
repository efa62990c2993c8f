import { ErrorCode } from '../cni/errors.js';
import { EngineError, type EngineErrorKind } from '../engine/errors.js';
import { clip, MESSAGE_LIMIT, quote } from '../util/quote.js';

export { quote };

/** The spec's well-known codes plus the one this door uses for its own bugs. */
export const DoorErrorCode = { ...ErrorCode, Internal: 999 } as const;

/**
 * A failure the door answers as the CNI error JSON (`code`, `msg`, `details`). The backend throws
 * it for outcomes the runtime must act on (11: retry later, 3: unknown container, 50/51 from
 * STATUS...); anything else it throws becomes code 999 with a bounded message.
 */
export class CNIDoorError extends Error {
  readonly code: number;
  readonly msg: string;
  readonly details: string;

  constructor(code: number, msg: string, details = '', options?: ErrorOptions) {
    super(details ? `${msg}: ${details}` : msg, options);
    this.name = 'CNIDoorError';
    this.code = code;
    this.msg = msg;
    this.details = details;
  }
}

export const badEnv = (msg: string): CNIDoorError => new CNIDoorError(DoorErrorCode.InvalidEnvironment, msg);
export const badConfig = (msg: string): CNIDoorError => new CNIDoorError(DoorErrorCode.InvalidNetworkConfig, msg);
export const unsupportedField = (key: string, value: unknown): CNIDoorError =>
  new CNIDoorError(DoorErrorCode.UnsupportedField, `unsupported field ${quote(key)} (value ${quote(value)})`);
export const undecodable = (msg: string): CNIDoorError => new CNIDoorError(DoorErrorCode.DecodingFailure, msg);

/** Whether an invalid request is the runtime's environment (CNI_*: 4) or its network config (stdin: 7). */
export type InvalidIn = 'env' | 'config';

/**
 * The CNI code of each engine error kind: the one place the CNI door maps the engine's errors.
 * 11 (try again later) for what a runtime's retry can fix: the node not ready, a timeout, a
 * request its shim gave up on; a plugin's failure keeps the plugin's own code.
 */
function cniCode(kind: EngineErrorKind, invalidIn: InvalidIn, pluginCode: number | undefined): number {
  switch (kind) {
    case 'invalid-request':
      return invalidIn === 'env' ? DoorErrorCode.InvalidEnvironment : DoorErrorCode.InvalidNetworkConfig;
    case 'already-exists':
      return DoorErrorCode.InvalidEnvironment;
    case 'not-found':
      return DoorErrorCode.UnknownContainer;
    case 'failed-precondition':
    case 'unavailable':
    case 'deadline-exceeded':
    case 'canceled':
      return DoorErrorCode.TryAgainLater;
    case 'plugin-failed':
      return pluginCode ?? DoorErrorCode.Internal;
    case 'internal':
      return DoorErrorCode.Internal;
  }
}

/**
 * Any failure of the engine as the CNI error the runtime sees (a CNIDoorError passes as it is).
 * The message is bounded: plugin errors quote whole configs.
 */
export function toCNIError(err: unknown, invalidIn: InvalidIn = 'config'): CNIDoorError {
  if (err instanceof CNIDoorError) return err;
  if (!(err instanceof EngineError)) return new CNIDoorError(DoorErrorCode.Internal, 'internal error in podnetd', clip(err instanceof Error ? err.message : String(err), MESSAGE_LIMIT), { cause: err });
  const code = cniCode(err.kind, invalidIn, err.cniCode);
  const msg = clip(err.message, MESSAGE_LIMIT);
  return code === DoorErrorCode.Internal ? new CNIDoorError(code, 'internal error in podnetd', msg, { cause: err }) : new CNIDoorError(code, msg, '', { cause: err });
}

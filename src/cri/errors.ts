import { status } from '@grpc/grpc-js';
import { ErrorCode } from '../cni/errors.js';
import { toEngineError, type EngineError, type EngineErrorKind } from '../engine/errors.js';
import { clip, MESSAGE_LIMIT } from '../util/quote.js';

/** An error with the gRPC status the client should see. */
export class CRIError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'CRIError';
  }
}

export const invalidArgument = (msg: string): CRIError => new CRIError(status.INVALID_ARGUMENT, msg);
export const notFound = (msg: string): CRIError => new CRIError(status.NOT_FOUND, msg);
export const failedPrecondition = (msg: string): CRIError => new CRIError(status.FAILED_PRECONDITION, msg);
export const alreadyExists = (msg: string): CRIError => new CRIError(status.ALREADY_EXISTS, msg);
export const unimplemented = (msg: string): CRIError => new CRIError(status.UNIMPLEMENTED, msg);
export const internal = (msg: string): CRIError => new CRIError(status.INTERNAL, msg);

const CODE_OF: Record<Exclude<EngineErrorKind, 'plugin-failed'>, status> = {
  'invalid-request': status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  'already-exists': status.ALREADY_EXISTS,
  'failed-precondition': status.FAILED_PRECONDITION,
  unavailable: status.UNAVAILABLE,
  'deadline-exceeded': status.DEADLINE_EXCEEDED,
  canceled: status.CANCELLED,
  internal: status.INTERNAL,
};

/** A plugin's CNI error code as the status a kubelet can act on: retry, fix the config, or not known. */
function pluginCode(cniCode: number | undefined): status {
  if (cniCode === ErrorCode.TryAgainLater || cniCode === ErrorCode.PluginNotAvailable) return status.UNAVAILABLE;
  if (cniCode === ErrorCode.InvalidNetworkConfig || cniCode === ErrorCode.UnsupportedField || cniCode === ErrorCode.IncompatibleVersion) return status.FAILED_PRECONDITION;
  return status.UNKNOWN;
}

function codeOf(e: EngineError): status {
  return e.kind === 'plugin-failed' ? pluginCode(e.cniCode) : CODE_OF[e.kind];
}

/** The one mapping of the CRI door: engine errors (and anything else thrown) to a gRPC status. */
export function toCRIError(err: unknown, context?: string): CRIError {
  if (err instanceof CRIError) return err;
  const e = toEngineError(err, context);
  return new CRIError(codeOf(e), e.message);
}

/** What a client gets over the socket: the mapped status, its message bounded (plugin and library errors can quote whole configs). */
export function toWireError(err: unknown): CRIError {
  const mapped = toCRIError(err);
  return new CRIError(mapped.code, clip(mapped.message, MESSAGE_LIMIT));
}

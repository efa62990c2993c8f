import { status } from '@grpc/grpc-js';
import { ConfigError, ErrorCode, InvalidRequestError, PluginError, PluginTimeoutError } from '../cni/errors.js';
import { PluginCanceledError } from '../cni/invoke.js';

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

/** Maps anything thrown below the RPC layer to the status a kubelet can act on. */
export function toCRIError(err: unknown, context?: string): CRIError {
  if (err instanceof CRIError) return err;
  const prefix = context ? `${context}: ` : '';
  const msg = `${prefix}${err instanceof Error ? err.message : String(err)}`;
  if (err instanceof PluginTimeoutError) return new CRIError(status.DEADLINE_EXCEEDED, msg);
  if (err instanceof PluginCanceledError) return new CRIError(status.CANCELLED, msg);
  if (err instanceof PluginError) {
    if (err.code === ErrorCode.TryAgainLater || err.code === ErrorCode.PluginNotAvailable) return new CRIError(status.UNAVAILABLE, msg);
    if (err.code === ErrorCode.InvalidNetworkConfig || err.code === ErrorCode.UnsupportedField || err.code === ErrorCode.IncompatibleVersion) {
      return new CRIError(status.FAILED_PRECONDITION, msg);
    }
    return new CRIError(status.UNKNOWN, msg);
  }
  if (err instanceof InvalidRequestError) return new CRIError(status.INVALID_ARGUMENT, msg);
  if (err instanceof ConfigError) return new CRIError(status.FAILED_PRECONDITION, msg);
  if (err instanceof Error && 'errors' in err && Array.isArray((err as { errors: unknown }).errors)) {
    const first = (err as { errors: unknown[] }).errors[0];
    const mapped = toCRIError(first, context);
    return new CRIError(mapped.code, msg);
  }
  return new CRIError(status.INTERNAL, msg);
}

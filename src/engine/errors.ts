import { ConfigError, InvalidRequestError, PluginError, PluginTimeoutError } from '../cni/errors.js';
import { PluginCanceledError } from '../cni/invoke.js';

/** What went wrong, in the engine's terms; each door maps a kind to its own code once. */
export type EngineErrorKind =
  | 'invalid-request'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'unavailable'
  | 'deadline-exceeded'
  | 'canceled'
  | 'plugin-failed'
  | 'internal';

export class EngineError extends Error {
  constructor(
    readonly kind: EngineErrorKind,
    message: string,
    /** plugin-failed: the plugin's CNI error code. */
    readonly cniCode?: number,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

// The CRI's names for the kinds, kept so code moved out of src/cri reads as it did.
export const invalidArgument = (msg: string): EngineError => new EngineError('invalid-request', msg);
export const notFound = (msg: string): EngineError => new EngineError('not-found', msg);
export const alreadyExists = (msg: string): EngineError => new EngineError('already-exists', msg);
export const failedPrecondition = (msg: string): EngineError => new EngineError('failed-precondition', msg);

/**
 * Classifies anything thrown below the engine (the CNI library, the store, namespaces) once, so
 * the doors only ever see EngineErrors. An EngineError passes unchanged; anything else gets the
 * context as a prefix.
 */
export function toEngineError(err: unknown, context?: string): EngineError {
  if (err instanceof EngineError) return err;
  const msg = `${context ? `${context}: ` : ''}${err instanceof Error ? err.message : String(err)}`;
  if (err instanceof PluginTimeoutError) return new EngineError('deadline-exceeded', msg);
  if (err instanceof PluginCanceledError) return new EngineError('canceled', msg);
  if (err instanceof PluginError) return new EngineError('plugin-failed', msg, err.code);
  if (err instanceof InvalidRequestError) return new EngineError('invalid-request', msg);
  if (err instanceof ConfigError) return new EngineError('failed-precondition', msg);
  // MultiError (every DEL of a teardown), AggregateError: the first failure decides the kind.
  if (err instanceof Error && 'errors' in err && Array.isArray(err.errors)) {
    const first = toEngineError((err.errors as unknown[])[0], context);
    return new EngineError(first.kind, msg, first.cniCode);
  }
  return new EngineError('internal', msg);
}

import { ErrorCode } from '../cni/errors.js';

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

const QUOTE_MAX = 64;

/**
 * A value for an error message or a log line: JSON-quoted (so control characters and quotes are
 * escaped) and cut to a bounded length, whatever the client sent.
 */
export function quote(v: unknown, max = QUOTE_MAX): string {
  const s = typeof v === 'string' ? v : v === undefined ? 'nothing' : (JSON.stringify(v) ?? typeof v);
  const cut = s.length > max ? `${s.slice(0, max)}...` : s;
  return JSON.stringify(cut);
}

export const badEnv = (msg: string): CNIDoorError => new CNIDoorError(DoorErrorCode.InvalidEnvironment, msg);
export const badConfig = (msg: string): CNIDoorError => new CNIDoorError(DoorErrorCode.InvalidNetworkConfig, msg);
export const unsupportedField = (key: string, value: unknown): CNIDoorError =>
  new CNIDoorError(DoorErrorCode.UnsupportedField, `unsupported field ${quote(key)} (value ${quote(value)})`);
export const undecodable = (msg: string): CNIDoorError => new CNIDoorError(DoorErrorCode.DecodingFailure, msg);

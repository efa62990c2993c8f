/**
 * The one way a client's value goes into an error message or a log field. A refusal that echoes
 * a megabyte back makes a status grpc-js clients never receive (they hang until their deadline,
 * stalling every call on the connection) and a log line nobody can read; so every quoted value
 * is cut to a small bound that still says how big it was.
 */

/** Characters of a client's value kept in a message or log field. */
export const QUOTE_LIMIT = 128;

/** Bound on a whole status message, whatever it is made of (plugin errors quote configs too). */
export const MESSAGE_LIMIT = 4096;

/** The value itself, cut to `limit` characters with "…(N bytes)" when longer. */
export function clip(value: string, limit = QUOTE_LIMIT): string {
  if (value.length <= limit) return value;
  return `${value.slice(0, limit)}…(${Buffer.byteLength(value)} bytes)`;
}

/**
 * A string as a JSON string literal (control characters escaped, so a NUL or a newline cannot
 * end up raw in a message), cut as clip() does; anything else unquoted, by value or kind.
 */
export function quote(value: unknown, limit = QUOTE_LIMIT): string {
  if (typeof value !== 'string') return clip(describe(value), limit);
  const text = value;
  const cut = text.length > limit;
  const shown = JSON.stringify(cut ? text.slice(0, limit) : text);
  return cut ? `${shown}…(${Buffer.byteLength(text)} bytes)` : shown;
}

/** A non-string value, shortly: numbers and booleans as written, anything else by its kind. */
function describe(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  return typeof value === 'object' ? 'an object' : typeof value;
}

/** JSON as it comes off the wire: what a config file, a plugin or a cache file may hold. */
export type JSONValue = null | boolean | number | string | JSONValue[] | JSONObject;
export interface JSONObject {
  [key: string]: JSONValue;
}

export function isObject(v: unknown): v is JSONObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/** JSON.parse that types its answer as unknown, so every use has to narrow it. */
export function parseJSON(text: string | Buffer): unknown {
  return JSON.parse(typeof text === 'string' ? text : text.toString('utf8')) as unknown;
}

/**
 * The nesting depth of a JSON text, counted before it is parsed so a deeply nested body costs
 * a scan, not a parse (strings are skipped, escapes included).
 */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

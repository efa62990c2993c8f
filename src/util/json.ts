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

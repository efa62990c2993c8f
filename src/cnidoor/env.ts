/**
 * The plugin environment a shim forwards (`env` of the request): every CNI_* variable the spec
 * defines checked and typed. Other variables (multus-shim forwards its whole environment: PATH,
 * HOME...) are bounded and otherwise ignored.
 */
import { MAX_IFNAME_BYTES } from '../cni/runtime-conf.js';
import type { PodIdentity } from './backend.js';
import { badEnv, quote } from './errors.js';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
export type Command = (typeof COMMANDS)[number];

const MAX_ENV_ENTRIES = 1024;
const MAX_ENV_KEY = 256;
const MAX_ENV_VALUE = 64 * 1024;
const MAX_PATH = 4096;
const MAX_CONTAINER_ID = 256;
const MAX_ARGS = 64;
const MAX_POD_FIELD = 253;

// CNI spec, section 2: alphanumeric first, then alphanumerics, "_", "." or "-".
const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// Printable ASCII without "/" and ":" (libcni refuses those and white space).
const IFNAME_RE = /^[\x21-\x2e\x30-\x39\x3b-\x7e]+$/;
const ARG_KEY_RE = /^[A-Za-z0-9_.-]+$/;
const CONTROL_RE = /[\x00-\x1f\x7f]/;

/** A container id as the CNI spec defines it (section 2). */
export function isContainerID(v: string): boolean {
  return v.length <= MAX_CONTAINER_ID && CONTAINER_ID_RE.test(v);
}

/** An interface name Linux and libcni take: 1-15 bytes, printable, no "/", ":" or spaces, not "." or "..". */
export function isIfName(v: string): boolean {
  return Buffer.byteLength(v) <= MAX_IFNAME_BYTES && IFNAME_RE.test(v) && v !== '.' && v !== '..';
}

/** The `env` object as it came: string keys to string values, in a Map. */
export function parseEnvObject(raw: unknown): Map<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badEnv(`env: expected an object of strings, got ${quote(raw)}`);
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > MAX_ENV_ENTRIES) throw badEnv(`env: more than ${MAX_ENV_ENTRIES} variables`);
  const env = new Map<string, string>();
  for (const [k, v] of entries) {
    if (k === '' || k.length > MAX_ENV_KEY || k.includes('=') || k.includes('\0')) throw badEnv(`env: invalid variable name ${quote(k)}`);
    if (typeof v !== 'string') throw badEnv(`env: ${quote(k)} must be a string, got ${quote(v)}`);
    if (v.length > MAX_ENV_VALUE) throw badEnv(`env: ${quote(k)} is longer than ${MAX_ENV_VALUE} characters`);
    env.set(k, v);
  }
  return env;
}

export function parseCommand(env: ReadonlyMap<string, string>, allowed: readonly Command[] = COMMANDS): Command {
  const v = env.get('CNI_COMMAND');
  if (v === undefined || v === '') throw badEnv('CNI_COMMAND is required');
  if (!(allowed as readonly string[]).includes(v)) throw badEnv(`CNI_COMMAND ${quote(v)} is not one of ${allowed.join(', ')}`);
  return v as Command;
}

export function parseContainerID(env: ReadonlyMap<string, string>): string {
  const v = env.get('CNI_CONTAINERID') ?? '';
  if (v === '') throw badEnv('CNI_CONTAINERID is required');
  if (!isContainerID(v)) {
    throw badEnv(`CNI_CONTAINERID ${quote(v)} is invalid: a letter or digit, then letters, digits, "_", "." or "-" (at most ${MAX_CONTAINER_ID})`);
  }
  return v;
}

export function parseIfName(env: ReadonlyMap<string, string>): string {
  const v = env.get('CNI_IFNAME') ?? '';
  if (v === '') throw badEnv('CNI_IFNAME is required');
  if (!isIfName(v)) {
    throw badEnv(`CNI_IFNAME ${quote(v)} is invalid: 1-${MAX_IFNAME_BYTES} bytes of printable ASCII without "/", ":" or spaces, not "." or ".."`);
  }
  return v;
}

function checkPath(name: string, v: string): void {
  if (v.length > MAX_PATH || v.includes('\0') || CONTROL_RE.test(v) || !v.startsWith('/')) {
    throw badEnv(`${name} ${quote(v)} is not an absolute path`);
  }
}

/** CNI_NETNS: an absolute path, or '' when absent and not required (DEL). */
export function parseNetns(env: ReadonlyMap<string, string>, required: boolean): string {
  const v = env.get('CNI_NETNS') ?? '';
  if (v === '') {
    if (required) throw badEnv('CNI_NETNS is required');
    return '';
  }
  checkPath('CNI_NETNS', v);
  return v;
}

/** CNI_PATH: a ':'-list of absolute dirs (empty entries skipped, as libcni does). */
export function parsePath(env: ReadonlyMap<string, string>): string[] {
  const v = env.get('CNI_PATH') ?? '';
  if (v.length > MAX_PATH) throw badEnv(`CNI_PATH is longer than ${MAX_PATH} characters`);
  const dirs = v.split(':').filter((d) => d !== '');
  for (const d of dirs) checkPath('CNI_PATH entry', d);
  return dirs;
}

/**
 * CNI_ARGS ("K=V;K=V", any order) into a Map. An element without "=" or with a second "=", a
 * bad key or a key given twice is refused: each could make two readers see different pods.
 */
export function parseCniArgs(env: ReadonlyMap<string, string>): Map<string, string> {
  const v = env.get('CNI_ARGS') ?? '';
  const args = new Map<string, string>();
  if (v === '') return args;
  const parts = v.split(';');
  if (parts.length > MAX_ARGS) throw badEnv(`CNI_ARGS has more than ${MAX_ARGS} elements`);
  for (const part of parts) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0 || part.indexOf('=', eq + 1) >= 0) throw badEnv(`CNI_ARGS element ${quote(part)} is not KEY=VALUE`);
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (!ARG_KEY_RE.test(key)) throw badEnv(`CNI_ARGS key ${quote(key)} is invalid`);
    if (CONTROL_RE.test(value)) throw badEnv(`CNI_ARGS value of ${key} holds a control character`);
    if (args.has(key)) throw badEnv(`CNI_ARGS gives ${key} twice`);
    args.set(key, value);
  }
  return args;
}

function podField(args: ReadonlyMap<string, string>, key: string, required: boolean): string {
  const v = args.get(key) ?? '';
  if (v === '' && required) throw badEnv(`CNI_ARGS lacks ${key}`);
  if (v.length > MAX_POD_FIELD) throw badEnv(`CNI_ARGS ${key} is longer than ${MAX_POD_FIELD} characters`);
  return v;
}

/**
 * The pod from the parsed CNI_ARGS. Required: namespace and name; a call without either is not
 * for a pod (undefined) unless `required`.
 */
export function parsePod(args: ReadonlyMap<string, string>, required: boolean): PodIdentity | undefined {
  if (!required && !args.has('K8S_POD_NAMESPACE') && !args.has('K8S_POD_NAME')) return undefined;
  return {
    namespace: podField(args, 'K8S_POD_NAMESPACE', true),
    name: podField(args, 'K8S_POD_NAME', true),
    uid: podField(args, 'K8S_POD_UID', false),
    infraContainerID: podField(args, 'K8S_POD_INFRA_CONTAINER_ID', false),
  };
}

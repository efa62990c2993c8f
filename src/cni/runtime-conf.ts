import { InvalidRequestError } from './errors.js';

/** The attachment parameters of section 3: what makes one ADD different from another. */
export interface RuntimeConf {
  containerID: string;
  /** Path of the network namespace; empty on DEL when the namespace is already gone. */
  netNS: string;
  ifName: string;
  /** CNI_ARGS, in order. */
  args?: ReadonlyArray<readonly [string, string]>;
  /** Capability arguments by convention name (portMappings, bandwidth, dns, ...). */
  capabilityArgs?: Readonly<Record<string, unknown>>;
  /** Overrides the library's cache dir for this attachment. */
  cacheDir?: string;
}

const CONTAINER_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
// Linux IFNAMSIZ is 16 including the NUL.
const IFNAME_RE = /^[^/\s:]{1,15}$/;
const MAX_ARG_BYTES = 4096;
const MAX_CONTAINER_ID = 256;

export function validateContainerID(id: string): void {
  if (!CONTAINER_ID_RE.test(id) || id.length > MAX_CONTAINER_ID) {
    throw new InvalidRequestError(
      `invalid container id "${id}": must start with a letter or digit, then letters, digits, "_", "." or "-"`,
    );
  }
}

export function validateIfName(name: string): void {
  if (!IFNAME_RE.test(name) || name === '.' || name === '..') {
    throw new InvalidRequestError(`invalid interface name "${name}": 1-15 characters, no "/", ":" or white space`);
  }
}

/**
 * CNI_ARGS is "K=V;K=V": a key or value holding ";", "=", NUL or a line break could smuggle in
 * another argument (K8S_POD_NAME="x;IP=10.0.0.9"), so those are refused, not escaped.
 */
export function validateCniArg(key: string, value: string): void {
  if (!/^[A-Za-z0-9_.-]+$/.test(key)) throw new InvalidRequestError(`invalid CNI_ARGS key "${key}"`);
  if (/[;=\0\r\n]/.test(value)) {
    throw new InvalidRequestError(`invalid CNI_ARGS value for ${key}: must not contain ";", "=", NUL or a line break`);
  }
  if (Buffer.byteLength(value) > MAX_ARG_BYTES) {
    throw new InvalidRequestError(`CNI_ARGS value for ${key} is longer than ${MAX_ARG_BYTES} bytes`);
  }
}

export function validateRuntimeConf(rt: RuntimeConf, needNetNS: boolean): void {
  validateContainerID(rt.containerID);
  validateIfName(rt.ifName);
  if (needNetNS && !rt.netNS) throw new InvalidRequestError('a network namespace path is required');
  if (rt.netNS && (rt.netNS.includes('\0') || !rt.netNS.startsWith('/'))) {
    throw new InvalidRequestError(`invalid network namespace path "${rt.netNS}": must be absolute`);
  }
  for (const [k, v] of rt.args ?? []) validateCniArg(k, v);
}

export function formatCniArgs(args: RuntimeConf['args']): string {
  return (args ?? []).map(([k, v]) => `${k}=${v}`).join(';');
}

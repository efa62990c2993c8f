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
/** Linux IFNAMSIZ is 16 bytes with the NUL; the kernel counts UTF-8 bytes, not characters. */
export const MAX_IFNAME_BYTES = 15;
/** What libcni's ValidateInterfaceName refuses anywhere in a name: "/", ":" and Go's unicode.IsSpace. */
const IFNAME_FORBIDDEN = /[/:\p{White_Space}]/u;
const MAX_ARG_BYTES = 4096;
const MAX_CONTAINER_ID = 256;

export function validateContainerID(id: string): void {
  if (!CONTAINER_ID_RE.test(id) || id.length > MAX_CONTAINER_ID) {
    throw new InvalidRequestError(
      `invalid container id "${id}": must start with a letter or digit, then letters, digits, "_", "." or "-"`,
    );
  }
}

/** libcni's ValidateInterfaceName: 1 to 15 bytes, not "." or "..", no "/", ":" or white space. */
export function validateIfName(name: string): void {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0 || bytes > MAX_IFNAME_BYTES || name === '.' || name === '..' || IFNAME_FORBIDDEN.test(name)) {
    throw new InvalidRequestError(
      `invalid interface name ${JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}...` : name)}: 1-${MAX_IFNAME_BYTES} bytes (UTF-8, as the kernel counts them), not "." or "..", no "/", ":" or white space`,
    );
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

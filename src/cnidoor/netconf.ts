/**
 * The shim's stdin: the podnet-cni plugin config as the runtime's libcni built it (name and
 * cniVersion of the list, our keys, the runtimeConfig of the capabilities we declare,
 * prevResult), checked key by key. Unknown keys are refused with code 2 naming them.
 */
import { isIP } from 'node:net';
import { isObject, type JSONObject, type JSONValue } from '../cni/json.js';
import { parseResult, ResultError, toCurrent, type Result } from '../cni/result.js';
import { compareVersions, isSupportedVersion } from '../cni/version.js';
import type { Bandwidth, DNSConfig, PortMapping, RuntimeConfig, ValidAttachment } from './backend.js';
import { isContainerID, isIfName } from './env.js';
import { badConfig, CNIDoorError, DoorErrorCode, quote, unsupportedField } from './errors.js';

/** Versions the shim speaks: the ones whose results it can print (0.3.0 and later). */
export const SHIM_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const VALID_ATTACHMENTS_KEY = 'cni.dev/valid-attachments';
export const POD_ANNOTATIONS_KEY = 'io.kubernetes.cri.pod-annotations';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const MAX_NAME = 253;
const MAX_PATH = 4096;
const MAX_PORT_MAPPINGS = 1024;
const MAX_DNS_ENTRIES = 64;
const MAX_DNS_ENTRY = 253;
const MAX_ANNOTATION_BYTES = 256 * 1024;
const MAX_VALID_ATTACHMENTS = 100_000;
const CONTROL_RE = /[\x00-\x1f\x7f]/;

export interface ShimConfig {
  cniVersion: string;
  name: string;
  type: string;
  /** Our shim's `socket` key ('' when absent); the daemon does not use it, the shim does. */
  socket: string;
  network: string | undefined;
  runtimeHandler: string | undefined;
  runtimeConfig: RuntimeConfig;
  prevResult: Result | undefined;
  /** Only on GC. */
  validAttachments: ValidAttachment[] | undefined;
}

/** Reads one object's keys, each once; `done()` refuses what nobody read. */
class Fields {
  private readonly seen = new Set<string>();
  constructor(
    private readonly o: JSONObject,
    readonly where: string,
  ) {}

  /** The value under any of the spellings (camelCase first, then Go field name); two that disagree are refused. */
  get(...names: string[]): JSONValue | undefined {
    let found: { name: string; v: JSONValue } | undefined;
    for (const n of names) {
      if (!Object.hasOwn(this.o, n)) continue;
      this.seen.add(n);
      const v = this.o[n]!;
      if (found && JSON.stringify(found.v) !== JSON.stringify(v)) {
        throw badConfig(`${this.where}: ${found.name} and ${n} disagree (${quote(found.v)} vs ${quote(v)})`);
      }
      found ??= { name: n, v };
    }
    // Go's encoding/json reads null as absent.
    return found?.v === null ? undefined : found?.v;
  }

  key(name: string): string {
    return this.where ? `${this.where}.${name}` : name;
  }

  str(...names: string[]): string | undefined {
    const v = this.get(...names);
    if (v === undefined || typeof v === 'string') return v;
    throw badConfig(`${this.key(names[0])}: expected a string, got ${quote(v)}`);
  }

  done(): void {
    for (const k of Object.keys(this.o)) if (!this.seen.has(k)) throw unsupportedField(this.key(k), this.o[k]);
  }
}

function obj(v: JSONValue | undefined, where: string): JSONObject {
  if (isObject(v)) return v;
  throw badConfig(`${where}: expected an object, got ${quote(v)}`);
}

function arr(v: JSONValue | undefined, where: string, max: number): JSONValue[] {
  if (!Array.isArray(v)) throw badConfig(`${where}: expected a list, got ${quote(v)}`);
  if (v.length > max) throw badConfig(`${where}: more than ${max} entries`);
  return v;
}

function int(v: JSONValue | undefined, where: string, min: number, max: number): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
  throw badConfig(`${where}: expected an integer from ${min} to ${max}, got ${quote(v)}`);
}

function ipAddress(v: string, where: string): string {
  if (isIP(v) === 0 || v.includes('%')) throw badConfig(`${where}: ${quote(v)} is not an IP address`);
  return v;
}

function name(v: string | undefined, where: string, required: boolean): string | undefined {
  if (v === undefined || v === '') {
    if (required) throw badConfig(`${where} is required`);
    return undefined;
  }
  if (v.length > MAX_NAME || !NAME_RE.test(v)) throw badConfig(`${where} ${quote(v)} is invalid: a letter or digit, then letters, digits, "_", "." or "-"`);
  return v;
}

const PROTOCOLS = new Set(['tcp', 'udp', 'sctp']);

function portMapping(v: JSONValue, where: string): PortMapping | undefined {
  const f = new Fields(obj(v, where), where);
  const hostPort = int(f.get('hostPort', 'HostPort'), f.key('hostPort'), 0, 65535);
  const containerPort = int(f.get('containerPort', 'ContainerPort'), f.key('containerPort'), 1, 65535);
  const protocol = (f.str('protocol', 'Protocol') ?? '').toLowerCase();
  if (!PROTOCOLS.has(protocol)) throw badConfig(`${f.key('protocol')}: ${quote(protocol)} is not tcp, udp or sctp`);
  const hostIP = f.str('hostIP', 'HostIP', 'hostIp') ?? '';
  if (hostIP !== '') ipAddress(hostIP, f.key('hostIP'));
  f.done();
  // As the CRI door and containerd do: a mapping without a host port forwards nothing.
  if (hostPort === 0) return undefined;
  return { hostPort, containerPort, protocol: protocol as PortMapping['protocol'], hostIP };
}

function bandwidth(v: JSONValue, where: string): Bandwidth | undefined {
  const f = new Fields(obj(v, where), where);
  const out: Bandwidth = {};
  for (const [camel, go] of [
    ['ingressRate', 'IngressRate'],
    ['ingressBurst', 'IngressBurst'],
    ['egressRate', 'EgressRate'],
    ['egressBurst', 'EgressBurst'],
  ] as const) {
    const x = f.get(camel, go);
    if (x !== undefined) out[camel] = int(x, f.key(camel), 0, Number.MAX_SAFE_INTEGER);
  }
  f.done();
  // containerd sends 0/0 for a direction with no limit; the bandwidth plugin reads that as unset.
  const set = (rate: number | undefined, burst: number | undefined): boolean => Boolean(rate) || Boolean(burst);
  const limit: Bandwidth = {
    ...(set(out.ingressRate, out.ingressBurst) ? { ingressRate: out.ingressRate ?? 0, ingressBurst: out.ingressBurst ?? 0 } : {}),
    ...(set(out.egressRate, out.egressBurst) ? { egressRate: out.egressRate ?? 0, egressBurst: out.egressBurst ?? 0 } : {}),
  };
  return Object.keys(limit).length > 0 ? limit : undefined;
}

function strings(v: JSONValue | undefined, where: string, each: (s: string, where: string) => void): string[] {
  if (v === undefined) return [];
  return arr(v, where, MAX_DNS_ENTRIES).map((s, i) => {
    if (typeof s !== 'string') throw badConfig(`${where}[${i}]: expected a string, got ${quote(s)}`);
    each(s, `${where}[${i}]`);
    return s;
  });
}

function dnsEntry(s: string, where: string): void {
  if (s === '' || s.length > MAX_DNS_ENTRY || CONTROL_RE.test(s)) throw badConfig(`${where}: ${quote(s)} is not a search domain or resolver option`);
}

function dns(v: JSONValue, where: string): DNSConfig | undefined {
  const f = new Fields(obj(v, where), where);
  const out = {
    servers: strings(f.get('servers', 'Servers'), f.key('servers'), ipAddress),
    searches: strings(f.get('searches', 'Searches'), f.key('searches'), dnsEntry),
    options: strings(f.get('options', 'Options'), f.key('options'), dnsEntry),
  };
  f.done();
  return out.servers.length + out.searches.length + out.options.length > 0 ? out : undefined;
}

function annotations(v: JSONValue, where: string): Map<string, string> {
  const out = new Map<string, string>();
  let bytes = 0;
  for (const [k, x] of Object.entries(obj(v, where))) {
    if (typeof x !== 'string') throw badConfig(`${where}[${quote(k)}]: expected a string, got ${quote(x)}`);
    if (k === '' || k.includes('\0') || x.includes('\0')) throw badConfig(`${where}: key ${quote(k)} is empty or holds a NUL byte`);
    bytes += Buffer.byteLength(k) + Buffer.byteLength(x);
    if (bytes > MAX_ANNOTATION_BYTES) throw badConfig(`${where}: larger than ${MAX_ANNOTATION_BYTES} bytes`);
    out.set(k, x);
  }
  return out;
}

export function parseRuntimeConfig(v: JSONValue | undefined): RuntimeConfig {
  const rc: RuntimeConfig = { portMappings: [], bandwidth: undefined, dns: undefined, podAnnotations: new Map(), cgroupPath: '' };
  if (v === undefined || v === null) return rc;
  const f = new Fields(obj(v, 'runtimeConfig'), 'runtimeConfig');
  const pm = f.get('portMappings');
  if (pm !== undefined) {
    rc.portMappings = arr(pm, 'runtimeConfig.portMappings', MAX_PORT_MAPPINGS)
      .map((m, i) => portMapping(m, `runtimeConfig.portMappings[${i}]`))
      .filter((m): m is PortMapping => m !== undefined);
  }
  const bw = f.get('bandwidth');
  if (bw !== undefined) rc.bandwidth = bandwidth(bw, 'runtimeConfig.bandwidth');
  const d = f.get('dns');
  if (d !== undefined) rc.dns = dns(d, 'runtimeConfig.dns');
  const a = f.get(POD_ANNOTATIONS_KEY);
  if (a !== undefined) rc.podAnnotations = annotations(a, `runtimeConfig.${POD_ANNOTATIONS_KEY}`);
  const cg = f.str('cgroupPath') ?? '';
  if (cg.length > MAX_PATH || CONTROL_RE.test(cg)) throw badConfig(`runtimeConfig.cgroupPath ${quote(cg)} is not a cgroup path`);
  rc.cgroupPath = cg;
  f.done();
  return rc;
}

function validAttachments(v: JSONValue, where: string): ValidAttachment[] {
  return arr(v, where, MAX_VALID_ATTACHMENTS).map((x, i) => {
    const f = new Fields(obj(x, `${where}[${i}]`), `${where}[${i}]`);
    const containerID = f.str('containerID') ?? '';
    const ifName = f.str('ifname') ?? '';
    f.done();
    if (!isContainerID(containerID)) throw badConfig(`${f.key('containerID')} ${quote(containerID)} is not a container id`);
    if (!isIfName(ifName)) throw badConfig(`${f.key('ifname')} ${quote(ifName)} is not an interface name`);
    return { containerID, ifName };
  });
}

/** The stdin's cniVersion: one the shim speaks, else code 1 (incompatible version). */
export function checkVersion(v: string | undefined, where: string, allowed: readonly string[] = SHIM_VERSIONS): string {
  if (v === undefined || v === '') throw badConfig(`${where} is required`);
  if (!allowed.includes(v)) {
    throw new CNIDoorError(DoorErrorCode.IncompatibleVersion, `${where} ${quote(v)} is not supported`, `supported versions: ${allowed.join(', ')}`);
  }
  return v;
}

/**
 * Parses the stdin the runtime gave the shim. `command` decides what must be there: GC carries
 * the valid attachments, prevResult is read where the spec passes it (0.4.0+ CHECK/DEL, and ADD
 * of a chained plugin).
 */
export function parseShimConfig(raw: unknown, command: string): ShimConfig {
  if (!isObject(raw)) throw badConfig(`config: expected a JSON object, got ${quote(raw)}`);
  const f = new Fields(raw, '');
  const cniVersion = checkVersion(f.str('cniVersion'), 'cniVersion');
  const configName = name(f.str('name'), 'name', true)!;
  const type = f.str('type') ?? '';
  if (type === '' || type.length > MAX_NAME || type.includes('/') || CONTROL_RE.test(type)) throw badConfig(`type ${quote(type)} is not a plugin name`);
  const socket = f.str('socket') ?? '';
  if (socket !== '' && (!socket.startsWith('/') || socket.length > MAX_PATH || CONTROL_RE.test(socket))) throw badConfig(`socket ${quote(socket)} is not an absolute path`);
  // multus-shim's own keys, so its unmodified conflist can point at us.
  for (const k of ['socketDir', 'logFile', 'logLevel']) f.str(k);
  const logToStderr = f.get('logToStderr');
  if (logToStderr !== undefined && typeof logToStderr !== 'boolean') throw badConfig(`logToStderr: expected true or false, got ${quote(logToStderr)}`);
  const readyTimeout = f.get('readyTimeoutMs');
  if (readyTimeout !== undefined) int(readyTimeout, 'readyTimeoutMs', 0, 600_000);
  const network = name(f.str('network'), 'network', false);
  const runtimeHandler = name(f.str('runtimeHandler'), 'runtimeHandler', false);
  const caps = f.get('capabilities');
  if (caps !== undefined) {
    for (const [k, v] of Object.entries(obj(caps, 'capabilities'))) {
      if (typeof v !== 'boolean') throw badConfig(`capabilities[${quote(k)}]: expected true or false, got ${quote(v)}`);
    }
  }
  const args = f.get('args');
  if (args !== undefined) obj(args, 'args');
  const runtimeConfig = parseRuntimeConfig(f.get('runtimeConfig'));
  let prevResult: Result | undefined;
  const prev = f.get('prevResult');
  if (prev !== undefined) {
    try {
      prevResult = toCurrent(parseResult(prev, cniVersion));
    } catch (err) {
      if (err instanceof ResultError) throw badConfig(`prevResult: ${err.message}`);
      throw err;
    }
  }
  let valid: ValidAttachment[] | undefined;
  const va = f.get(VALID_ATTACHMENTS_KEY);
  if (command === 'GC') {
    if (compareVersions(cniVersion, '1.1.0') < 0) throw new CNIDoorError(DoorErrorCode.IncompatibleVersion, `GC needs cniVersion 1.1.0, the config has ${quote(cniVersion)}`);
    valid = va === undefined ? [] : validAttachments(va, VALID_ATTACHMENTS_KEY);
  } else if (va !== undefined) {
    throw unsupportedField(VALID_ATTACHMENTS_KEY, va);
  }
  f.done();
  return { cniVersion, name: configName, type, socket, network, runtimeHandler, runtimeConfig, prevResult, validAttachments: valid };
}

/** A result version the caller asked for (our shim's `resultVersion`). */
export function checkResultVersion(v: unknown): string {
  if (typeof v !== 'string' || !isSupportedVersion(v) || !(SHIM_VERSIONS as readonly string[]).includes(v)) {
    throw new CNIDoorError(DoorErrorCode.IncompatibleVersion, `resultVersion ${quote(v)} is not supported`, `supported versions: ${SHIM_VERSIONS.join(', ')}`);
  }
  return v;
}

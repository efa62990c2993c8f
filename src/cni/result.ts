/**
 * Typed CNI ADD results for every spec version we speak, validation of untrusted result JSON, and
 * conversion between versions following libcni (containernetworking/cni pkg/types/{020,040,100}).
 *
 * Three shapes exist: 0.1.0/0.2.0 ("020": ip4/ip6), 0.3.0/0.3.1/0.4.0 ("040": ips carry a
 * `version`), 1.0.0/1.1.0 ("current"). Inside a shape only `cniVersion` changes.
 *
 * Which fields survive a down-conversion. The spec says nothing about conversion, so we do what
 * libcni does, which is what every Go plugin and runtime sees:
 *  - 1.1.0 -> 1.0.0 keeps everything (interface mtu/socketPath/pciID, route mtu/advmss/priority/
 *    table/scope). libcni uses one Go type for both, and the spec promises compatibility within a
 *    major version, so a 1.0.0 consumer just ignores fields it does not know.
 *  - current -> 0.3.x/0.4.0 keeps only name/mac/sandbox of each interface (libcni's 040 Interface
 *    has no other fields) but keeps every route field: libcni's 040 and 100 share types.Route.
 *  - anything -> 0.1.0/0.2.0 keeps only dst/gw of each route (libcni builds a fresh Route{Dst,GW}).
 * Parsing keeps exactly the fields libcni's struct for that shape has, so parse -> convert never
 * carries data a Go runtime would have dropped.
 */
import { isIP } from 'node:net';
import { CURRENT_VERSION, isSupportedVersion } from './version.js';

export interface Interface { name: string; mac?: string; mtu?: number; sandbox?: string; socketPath?: string; pciID?: string }
export interface IPConfig { interface?: number; address: string /* CIDR */; gateway?: string }
export interface Route { dst: string; gw?: string; mtu?: number; advmss?: number; priority?: number; table?: number; scope?: number }
export interface DNS { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] }
/** 1.0.0 and 1.1.0 (the "current" shape). */
export interface Result { cniVersion: string; interfaces?: Interface[]; ips?: IPConfig[]; routes?: Route[]; dns?: DNS }
/** 0.3.0, 0.3.1, 0.4.0: ips carry version "4"|"6". */
export interface IPConfig040 extends IPConfig { version: '4' | '6' }
export interface Result040 { cniVersion: string; interfaces?: Interface[]; ips?: IPConfig040[]; routes?: Route[]; dns?: DNS }
/** 0.1.0 and 0.2.0 */
export interface IPConfig020 { ip: string; gateway?: string; routes?: Route[] }
export interface Result020 { cniVersion: string; ip4?: IPConfig020; ip6?: IPConfig020; dns?: DNS }
export type AnyResult = Result | Result040 | Result020;

/** A malformed result or an impossible conversion; the message names the field and the reason. */
export class ResultError extends Error {
  override name = 'ResultError';
}

type Shape = '020' | '040' | 'current';

function shapeOf(version: string): Shape {
  if (!isSupportedVersion(version)) throw new ResultError(`unsupported CNI result version "${version}"`);
  if (version === '0.1.0' || version === '0.2.0') return '020';
  if (version === '1.0.0' || version === '1.1.0') return 'current';
  return '040';
}

export function isResult020(r: AnyResult): r is Result020 {
  return isSupportedVersion(r.cniVersion) && shapeOf(r.cniVersion) === '020';
}
export function isResult040(r: AnyResult): r is Result040 {
  return isSupportedVersion(r.cniVersion) && shapeOf(r.cniVersion) === '040';
}
export function isCurrent(r: AnyResult): r is Result {
  return isSupportedVersion(r.cniVersion) && shapeOf(r.cniVersion) === 'current';
}

// ---------------------------------------------------------------------------------------------
// Addresses

/** An IP literal as Go's net.ParseIP accepts it: no zone, no brackets. */
function isIPAddress(s: string): boolean {
  return !s.includes('%') && isIP(s) !== 0;
}

interface Cidr { ip: string; prefix: number }

/** "addr/prefix" as Go's net.ParseCIDR accepts it; the address part is kept (not masked). */
function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0 || slash !== s.lastIndexOf('/')) return undefined;
  const ip = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  if (!isIPAddress(ip) || !/^(0|[1-9][0-9]{0,2})$/.test(bits)) return undefined;
  const prefix = Number(bits);
  return prefix <= (isIP(ip) === 4 ? 32 : 128) ? { ip, prefix } : undefined;
}

/** The eight 16-bit groups of a valid IPv6 literal. */
function ipv6Groups(ip: string): number[] {
  let s = ip.toLowerCase();
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const o = tail.split('.').map(Number);
    s = `${s.slice(0, lastColon + 1)}${(((o[0] ?? 0) << 8) | (o[1] ?? 0)).toString(16)}:${(((o[2] ?? 0) << 8) | (o[3] ?? 0)).toString(16)}`;
  }
  const hex = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const gap = s.indexOf('::');
  if (gap < 0) return hex(s);
  const head = hex(s.slice(0, gap));
  const rest = hex(s.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
}

/**
 * Address family the way libcni decides it (Go's IP.To4() != nil): IPv4, and IPv4-mapped IPv6
 * (::ffff:a.b.c.d, in any spelling), count as 4.
 */
function familyOf(ip: string): 4 | 6 {
  if (isIP(ip) === 4) return 4;
  const g = ipv6Groups(ip);
  return g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff ? 4 : 6;
}

function cidrFamily(cidr: string): 4 | 6 {
  const slash = cidr.indexOf('/');
  return familyOf(slash < 0 ? cidr : cidr.slice(0, slash));
}

// ---------------------------------------------------------------------------------------------
// Validation of untrusted JSON

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** `path.key`, or just `key` at the top level. */
function at(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function bad(path: string, want: string, got: unknown): never {
  throw new ResultError(`invalid CNI result: ${path}: expected ${want}, got ${show(got)}`);
}

/** Go's encoding/json turns null into the zero value, so null means "absent" for optional fields. */
function get(o: Obj, key: string): unknown {
  const v = o[key];
  return v === null ? undefined : v;
}

function obj(v: unknown, path: string): Obj {
  return isObj(v) ? v : bad(path, 'an object', v);
}

function optString(o: Obj, key: string, path: string): string | undefined {
  const v = get(o, key);
  if (v === undefined || typeof v === 'string') return v;
  return bad(at(path, key), 'a string', v);
}

function optStrings(o: Obj, key: string, path: string): string[] | undefined {
  const v = get(o, key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) return bad(at(path, key), 'an array of strings', v);
  return v.map((s: unknown, i) => (typeof s === 'string' ? s : bad(`${at(path, key)}[${i}]`, 'a string', s)));
}

function optUint(o: Obj, key: string, path: string, max = 0xffffffff): number | undefined {
  const v = get(o, key);
  if (v === undefined) return undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max) return v;
  return bad(at(path, key), `an integer from 0 to ${max}`, v);
}

function optIP(o: Obj, key: string, path: string): string | undefined {
  const v = get(o, key);
  if (v === undefined) return undefined;
  return typeof v === 'string' && isIPAddress(v) ? v : bad(at(path, key), 'an IP address', v);
}

function reqCidr(o: Obj, key: string, path: string): string {
  const v = get(o, key);
  return typeof v === 'string' && parseCidr(v) ? v : bad(at(path, key), 'an address in CIDR notation', v);
}

function optArray<T>(o: Obj, key: string, path: string, each: (v: unknown, path: string) => T): T[] | undefined {
  const v = get(o, key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) return bad(at(path, key), 'an array', v);
  return v.map((item: unknown, i) => each(item, `${at(path, key)}[${i}]`));
}

/** Builds an object without the keys whose value is undefined (so equality and JSON stay clean). */
function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

function parseDNS(v: unknown, path: string): DNS {
  const o = obj(v, path);
  return compact({
    nameservers: optStrings(o, 'nameservers', path),
    domain: optString(o, 'domain', path),
    search: optStrings(o, 'search', path),
    options: optStrings(o, 'options', path),
  });
}

function parseRoute(v: unknown, path: string): Route {
  const o = obj(v, path);
  return compact({
    dst: reqCidr(o, 'dst', path),
    gw: optIP(o, 'gw', path),
    mtu: optUint(o, 'mtu', path),
    advmss: optUint(o, 'advmss', path),
    priority: optUint(o, 'priority', path),
    table: optUint(o, 'table', path),
    scope: optUint(o, 'scope', path, 255),
  });
}

function parseInterface(v: unknown, path: string, shape: Shape): Interface {
  const o = obj(v, path);
  const name = get(o, 'name');
  if (typeof name !== 'string' || name === '') bad(at(path, 'name'), 'a non-empty string', name);
  const base = { name, mac: optString(o, 'mac', path) };
  // libcni's 0.3.x/0.4.0 Interface has only name, mac and sandbox.
  if (shape === '040') return compact({ ...base, sandbox: optString(o, 'sandbox', path) });
  return compact({
    ...base,
    mtu: optUint(o, 'mtu', path),
    sandbox: optString(o, 'sandbox', path),
    socketPath: optString(o, 'socketPath', path),
    pciID: optString(o, 'pciID', path),
  });
}

/**
 * `interface` must be a non-negative integer. It is deliberately not checked against the
 * interfaces array: libcni does not (IPAM results legitimately carry no interfaces, and chained
 * plugins pass through what they get); plugins check it when they apply the IP.
 */
function parseIPConfig(v: unknown, path: string): IPConfig {
  const o = obj(v, path);
  return compact({ interface: optUint(o, 'interface', path), address: reqCidr(o, 'address', path), gateway: optIP(o, 'gateway', path) });
}

function parseIPConfig040(v: unknown, path: string): IPConfig040 {
  const ipc = parseIPConfig(v, path);
  const given = get(obj(v, path), 'version');
  // Plugins built on libcni 1.x print 0.3.x/0.4.0 results without `version` (libcni derives it
  // from the address on the way in), so a missing one is derived; a wrong one is still refused.
  const version = given === undefined ? (cidrFamily(ipc.address) === 4 ? '4' : '6') : given;
  if (version !== '4' && version !== '6') return bad(at(path, 'version'), '"4" or "6"', version);
  if (String(cidrFamily(ipc.address)) !== version) bad(at(path, 'version'), `"${cidrFamily(ipc.address)}" for address ${ipc.address}`, version);
  const { interface: intf, address, gateway } = ipc;
  return compact({ version, interface: intf, address, gateway });
}

function parseIPConfig020(v: unknown, path: string, family: 4 | 6): IPConfig020 {
  const o = obj(v, path);
  const ip = reqCidr(o, 'ip', path);
  if (cidrFamily(ip) !== family) bad(at(path, 'ip'), `an IPv${family} address`, ip);
  return compact({ ip, gateway: optIP(o, 'gateway', path), routes: optArray(o, 'routes', path, parseRoute) });
}

/**
 * Validates untrusted JSON (a plugin's stdout, a cache file) as a CNI result and returns a copy
 * holding only the fields that version's shape defines.
 *
 * Without `version` the result's own cniVersion decides; a missing or empty one means 0.1.0
 * (libcni create.DecodeVersion). With `version` (the version the plugin was invoked with) a missing
 * cniVersion is taken to be `version` (libcni invoke.fixupResultVersion), and a present one must be
 * of the same shape and is kept (libcni create.Create).
 */
export function parseResult(raw: unknown, version?: string): AnyResult {
  if (!isObj(raw)) throw new ResultError(`invalid CNI result: expected a JSON object, got ${show(raw)}`);
  const own = get(raw, 'cniVersion');
  if (own !== undefined && typeof own !== 'string') bad('cniVersion', 'a string', own);
  const cniVersion = own === undefined || own === '' ? (version ?? '0.1.0') : own;
  const shape = shapeOf(cniVersion);
  if (version !== undefined && shapeOf(version) !== shape) {
    throw new ResultError(`CNI result has cniVersion "${cniVersion}", which is not compatible with expected version "${version}"`);
  }
  const p = '';
  const dns = get(raw, 'dns') === undefined ? undefined : parseDNS(get(raw, 'dns'), 'dns');
  if (shape === '020') {
    const ip4 = get(raw, 'ip4');
    const ip6 = get(raw, 'ip6');
    return compact<Result020>({
      cniVersion,
      ip4: ip4 === undefined ? undefined : parseIPConfig020(ip4, 'ip4', 4),
      ip6: ip6 === undefined ? undefined : parseIPConfig020(ip6, 'ip6', 6),
      dns,
    });
  }
  const interfaces = optArray(raw, 'interfaces', p, (v, path) => parseInterface(v, path, shape));
  const routes = optArray(raw, 'routes', p, parseRoute);
  if (shape === '040') {
    return compact<Result040>({ cniVersion, interfaces, ips: optArray(raw, 'ips', p, parseIPConfig040), routes, dns });
  }
  return compact<Result>({ cniVersion, interfaces, ips: optArray(raw, 'ips', p, parseIPConfig), routes, dns });
}

// ---------------------------------------------------------------------------------------------
// Conversion. Every function returns fresh objects; nothing is shared with the input.

const copyDNS = (d: DNS): DNS =>
  compact({
    nameservers: d.nameservers && [...d.nameservers],
    domain: d.domain,
    search: d.search && [...d.search],
    options: d.options && [...d.options],
  });
const copyRoute = (r: Route): Route =>
  compact({ dst: r.dst, gw: r.gw, mtu: r.mtu, advmss: r.advmss, priority: r.priority, table: r.table, scope: r.scope });
const interface040 = (i: Interface): Interface => compact({ name: i.name, mac: i.mac, sandbox: i.sandbox });
const interfaceCurrent = (i: Interface): Interface =>
  compact({ name: i.name, mac: i.mac, mtu: i.mtu, sandbox: i.sandbox, socketPath: i.socketPath, pciID: i.pciID });
/** Cross-shape conversions omit empty lists, as libcni's `omitempty` JSON does. */
const nonEmpty = <T>(a: T[] | undefined): T[] | undefined => (a && a.length > 0 ? a : undefined);

function copyCurrent(r: Result, cniVersion: string): Result {
  return compact<Result>({
    cniVersion,
    interfaces: r.interfaces?.map(interfaceCurrent),
    ips: r.ips?.map((ip) => compact<IPConfig>({ interface: ip.interface, address: ip.address, gateway: ip.gateway })),
    routes: r.routes?.map(copyRoute),
    dns: r.dns && copyDNS(r.dns),
  });
}

function copy040(r: Result040, cniVersion: string): Result040 {
  return compact<Result040>({
    cniVersion,
    interfaces: r.interfaces?.map(interface040),
    ips: r.ips?.map((ip) => compact<IPConfig040>({ version: ip.version, interface: ip.interface, address: ip.address, gateway: ip.gateway })),
    routes: r.routes?.map(copyRoute),
    dns: r.dns && copyDNS(r.dns),
  });
}

function copyIPConfig020(c: IPConfig020): IPConfig020 {
  return compact({ ip: c.ip, gateway: c.gateway, routes: c.routes?.map(copyRoute) });
}

function copy020(r: Result020, cniVersion: string): Result020 {
  return compact<Result020>({ cniVersion, ip4: r.ip4 && copyIPConfig020(r.ip4), ip6: r.ip6 && copyIPConfig020(r.ip6), dns: r.dns && copyDNS(r.dns) });
}

function currentTo040(r: Result, cniVersion: string): Result040 {
  return compact<Result040>({
    cniVersion,
    interfaces: nonEmpty(r.interfaces?.map(interface040)),
    ips: nonEmpty(
      r.ips?.map((ip) =>
        compact<IPConfig040>({ version: cidrFamily(ip.address) === 4 ? '4' : '6', interface: ip.interface, address: ip.address, gateway: ip.gateway }),
      ),
    ),
    routes: nonEmpty(r.routes?.map(copyRoute)),
    dns: r.dns && copyDNS(r.dns),
  });
}

function r040ToCurrent(r: Result040, cniVersion: string): Result {
  return compact<Result>({
    cniVersion,
    interfaces: nonEmpty(r.interfaces?.map(interface040)),
    ips: nonEmpty(r.ips?.map((ip) => compact<IPConfig>({ interface: ip.interface, address: ip.address, gateway: ip.gateway }))),
    routes: nonEmpty(r.routes?.map(copyRoute)),
    dns: r.dns && copyDNS(r.dns),
  });
}

/**
 * libcni's 040 convertTo02x: the first IP of each family (by `version`) with its gateway; each
 * route goes, as dst/gw only, to the config of its dst's family or is dropped when that family has
 * no IP; interfaces and interface indices are dropped. No IP at all is an error.
 */
function r040To020(r: Result040, cniVersion: string): Result020 {
  let ip4: IPConfig020 | undefined;
  let ip6: IPConfig020 | undefined;
  for (const ip of r.ips ?? []) {
    if (ip.version === '4') ip4 ??= compact({ ip: ip.address, gateway: ip.gateway });
    else if (ip.version === '6') ip6 ??= compact({ ip: ip.address, gateway: ip.gateway });
  }
  if (!ip4 && !ip6) throw new ResultError(`cannot convert CNI result from ${r.cniVersion} to ${cniVersion}: no valid IP addresses`);
  for (const route of r.routes ?? []) {
    const target = cidrFamily(route.dst) === 4 ? ip4 : ip6;
    if (target) (target.routes ??= []).push(compact({ dst: route.dst, gw: route.gw }));
  }
  return compact<Result020>({ cniVersion, ip4, ip6, dns: r.dns && copyDNS(r.dns) });
}

/** libcni's 040 convertFrom02x: ip4 then ip6 become `ips`; their routes (all fields) move to `routes`. */
function r020To040(r: Result020, cniVersion: string): Result040 {
  const ips: IPConfig040[] = [];
  const routes: Route[] = [];
  for (const [version, c] of [['4', r.ip4], ['6', r.ip6]] as const) {
    if (!c) continue;
    ips.push(compact<IPConfig040>({ version, address: c.ip, gateway: c.gateway }));
    routes.push(...(c.routes ?? []).map(copyRoute));
  }
  return compact<Result040>({ cniVersion, ips: nonEmpty(ips), routes: nonEmpty(routes), dns: r.dns && copyDNS(r.dns) });
}

/**
 * Converts a result to any supported version following libcni's converters (see the top of this
 * file for what each direction keeps). The input is assumed well-formed (parseResult's output or
 * built in code). Throws ResultError for unsupported versions or when going to 0.1.0/0.2.0 from a
 * result without IPs.
 */
export function convertResult(result: AnyResult, toVersion: string): AnyResult {
  const to = shapeOf(toVersion);
  const from = shapeOf(result.cniVersion);
  if (from === 'current') {
    const r = result as Result;
    if (to === 'current') return copyCurrent(r, toVersion);
    return to === '040' ? currentTo040(r, toVersion) : r040To020(currentTo040(r, result.cniVersion), toVersion);
  }
  if (from === '040') {
    const r = result as Result040;
    if (to === '040') return copy040(r, toVersion);
    return to === 'current' ? r040ToCurrent(r, toVersion) : r040To020(r, toVersion);
  }
  const r = result as Result020;
  if (to === '020') return copy020(r, toVersion);
  return to === '040' ? r020To040(r, toVersion) : r040ToCurrent(r020To040(r, '0.4.0'), toVersion);
}

/** The result in the current shape: a copy if it already is 1.x (version kept), else converted to 1.1.0. */
export function toCurrent(result: AnyResult): Result {
  const version = isCurrent(result) ? result.cniVersion : CURRENT_VERSION;
  return convertResult(result, version);
}

/** The IPs of a current-shape result, split into their parts. */
export function resultIPs(r: Result): { address: string; ip: string; family: 4 | 6; prefix: number; gateway?: string; interface?: number }[] {
  return (r.ips ?? []).map((c) => {
    const cidr = parseCidr(c.address);
    if (!cidr) throw new ResultError(`invalid CNI result: ips: expected an address in CIDR notation, got ${show(c.address)}`);
    return compact({ address: c.address, ip: cidr.ip, family: familyOf(cidr.ip), prefix: cidr.prefix, gateway: c.gateway, interface: c.interface });
  });
}

import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { confListFromBytes, confListFromConfBytes, type NetworkConfigList } from '../cni/config.js';
import { errorMessage } from '../cni/errors.js';
import { isObject, isStringArray, jsonDepth, type JSONObject, type JSONValue } from '../util/json.js';
import type { BandWidth, PortMapping } from '../cni/networks.js';
import { validateCniArg } from '../cni/runtime-conf.js';
import { parseDuration } from '../util/duration.js';
import { dirSignature } from './dir-signature.js';
import { invalidArgument, type EngineError } from './errors.js';
import { MAX_BANDWIDTH, MIN_BANDWIDTH } from '../util/quantity.js';
import { clip, quote } from '../util/quote.js';
import { ipFamily } from '../util/ip.js';
import type { AttachmentRecord } from './store.js';

/** Multus's pod annotations. */
export const NETWORKS_ANNOTATION = 'k8s.v1.cni.cncf.io/networks';
export const DEFAULT_NETWORK_ANNOTATION = 'v1.multus-cni.io/default-network';

/** One item of the networks annotation, in either of Multus's forms. */
export interface NetworkSelection {
  name: string;
  namespace: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  defaultRoute?: string[];
  portMappings?: PortMapping[];
  bandwidth?: BandWidth;
  /** CNI_ARGS pairs, in the order written. */
  cniArgs?: Array<[string, string]>;
  timeoutMs?: number;
  /** How the user wrote it, for error messages and network-status. */
  source: string;
}

/** A NetworkAttachmentDefinition as read from the attachments dir. */
export interface NAD {
  name: string;
  namespace: string;
  /** spec.config; empty means "the conf-dir network of this name". */
  config: string;
  file: string;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const IFNAME_RE = /^[^/\s:]{1,15}$/;
const MAX_ITEMS = 32;
/** Bounds on the whole annotation: a pod cannot make us parse or store megabytes of it. */
const MAX_ANNOTATION_BYTES = 64 * 1024;
/** list → element → portMappings → mapping is the deepest the form goes. */
const MAX_JSON_DEPTH = 4;
const MAX_LIST = 64;
const MAX_CNI_ARGS = 64;
const MIN_TIMEOUT_MS = 1;
const MAX_TIMEOUT_MS = 3_600_000;
const PROTOCOLS: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp']);
const BANDWIDTH_RATES = ['ingressRate', 'egressRate'] as const;
const BANDWIDTH_BURSTS = ['ingressBurst', 'egressBurst'] as const;

/** `annotation` is one of the two annotations, or (for a hot-plug request) what the element came in. */
function refuse(msg: string, annotation = NETWORKS_ANNOTATION): EngineError {
  const isAnnotation = annotation === NETWORKS_ANNOTATION || annotation === DEFAULT_NETWORK_ANNOTATION;
  return invalidArgument(`${isAnnotation ? `annotation ${annotation}` : annotation}: ${msg}`);
}

function checkLabel(kind: string, v: string, item: string, annotation = NETWORKS_ANNOTATION): void {
  if (v.length > 63 || !DNS1123_LABEL.test(v)) throw refuse(`${kind} ${quote(v)} in ${quote(item)} is not a DNS-1123 label`, annotation);
}

function checkIfName(v: string, item: string, annotation = NETWORKS_ANNOTATION): void {
  if (!IFNAME_RE.test(v) || v === '.' || v === '..') {
    throw refuse(`interface ${quote(v)} in ${quote(item)} must be 1-15 characters without "/", ":" or spaces`, annotation);
  }
}

/** `[namespace/]name[@ifname]` split into its parts, unchecked; undefined when it is not of that form. */
export function splitShortForm(item: string): { namespace?: string; name: string; interface?: string } | undefined {
  const m = /^(?:([^/@]+)\/)?([^/@]+)(?:@(.+))?$/.exec(item);
  if (!m) return undefined;
  return { ...(m[1] !== undefined ? { namespace: m[1] } : {}), name: m[2], ...(m[3] !== undefined ? { interface: m[3] } : {}) };
}

/** `[namespace/]name[@ifname]` */
function parseShort(item: string, podNamespace: string, annotation = NETWORKS_ANNOTATION): NetworkSelection {
  const m = splitShortForm(item);
  if (!m) throw refuse(`${quote(item)} is not of the form [namespace/]name[@interface]`, annotation);
  const namespace = m.namespace ?? podNamespace;
  checkLabel('namespace', namespace, item, annotation);
  checkLabel('name', m.name, item, annotation);
  if (m.interface !== undefined) checkIfName(m.interface, item, annotation);
  return { name: m.name, namespace, ...(m.interface !== undefined ? { interface: m.interface } : {}), source: item };
}

/** One element's fields, read with its name in every refusal. */
class ElementReader {
  constructor(
    private readonly o: JSONObject,
    readonly label: string,
    /** Where the element came from, first in every refusal (the annotation, or a hot-plug request). */
    readonly where = NETWORKS_ANNOTATION,
  ) {}

  private bad(field: string, what: string): EngineError {
    return refuse(`${quote(field)} of ${quote(this.label)} ${what}`, this.where);
  }

  has(key: string): boolean {
    return Object.hasOwn(this.o, key);
  }

  get(key: string): JSONValue | undefined {
    return this.has(key) ? this.o[key] : undefined;
  }

  string(key: string): string | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw this.bad(key, 'must be a string');
    return v;
  }

  strings(key: string): string[] | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (!isStringArray(v)) throw this.bad(key, 'must be a list of strings');
    if (v.length > MAX_LIST) throw this.bad(key, `has more than ${MAX_LIST} entries`);
    return v;
  }

  object(key: string): JSONObject | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (!isObject(v)) throw this.bad(key, 'must be an object');
    return v;
  }

  /** An IP (cidr: "IP/prefix" allowed) at key[i]. */
  ip(key: string, i: number, v: string, cidr: boolean): 4 | 6 {
    const family = ipFamily(v, cidr);
    if (!family) throw this.bad(`${key}[${i}]`, `${quote(v)} is not an IP address${cidr ? ' or IP/prefix' : ''}`);
    return family;
  }

  /** A whole number within [min, max] at field. */
  int(field: string, v: JSONValue | undefined, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw this.bad(field, `must be an integer ${min}-${max}, not ${quote(v)}`);
    return v;
  }

  fail(field: string, what: string): EngineError {
    return this.bad(field, what);
  }
}

function readPortMappings(r: ElementReader): PortMapping[] | undefined {
  const v = r.get('portMappings');
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw r.fail('portMappings', 'must be a list');
  if (v.length > MAX_LIST) throw r.fail('portMappings', `has more than ${MAX_LIST} entries`);
  return v.map((raw, i) => {
    const f = `portMappings[${i}]`;
    if (!isObject(raw)) throw r.fail(f, 'must be an object');
    const m = new ElementReader(raw, r.label, r.where);
    const hostPort = r.int(`${f}.hostPort`, m.get('hostPort'), 1, 65535);
    const containerPort = r.int(`${f}.containerPort`, m.get('containerPort'), 1, 65535);
    const proto = m.get('protocol') ?? 'tcp';
    const protocol = typeof proto === 'string' ? proto.toLowerCase() : '';
    if (!PROTOCOLS.has(protocol)) throw r.fail(`${f}.protocol`, `must be "tcp", "udp" or "sctp", not ${quote(proto)}`);
    const hostIP = m.get('hostIP');
    if (hostIP !== undefined && (typeof hostIP !== 'string' || (hostIP !== '' && !ipFamily(hostIP, false)))) throw r.fail(`${f}.hostIP`, `${quote(hostIP)} is not an IP address`);
    return { hostPort, containerPort, protocol, ...(hostIP ? { hostIP } : {}) };
  });
}

function readBandwidth(r: ElementReader): BandWidth | undefined {
  const bw = r.object('bandwidth');
  if (!bw) return undefined;
  const b = new ElementReader(bw, r.label, r.where);
  const out: BandWidth = {};
  for (const k of Object.keys(bw)) {
    if (!(BANDWIDTH_RATES as readonly string[]).includes(k) && !(BANDWIDTH_BURSTS as readonly string[]).includes(k)) {
      throw r.fail(`bandwidth.${clip(k)}`, 'is not one of ingressRate, ingressBurst, egressRate, egressBurst');
    }
  }
  for (const k of BANDWIDTH_RATES) if (b.has(k)) out[k] = r.int(`bandwidth.${k}`, b.get(k), MIN_BANDWIDTH, MAX_BANDWIDTH);
  for (const k of BANDWIDTH_BURSTS) if (b.has(k)) out[k] = r.int(`bandwidth.${k}`, b.get(k), 1, MAX_BANDWIDTH);
  return out;
}

/** A flat object of string, number or boolean values, each a safe CNI_ARGS pair. */
function readCniArgs(r: ElementReader): Array<[string, string]> | undefined {
  const args = r.object('cni-args');
  if (!args) return undefined;
  const entries = Object.entries(args);
  if (entries.length > MAX_CNI_ARGS) throw r.fail('cni-args', `has more than ${MAX_CNI_ARGS} entries`);
  return entries.map(([k, v]) => {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw r.fail(`cni-args.${clip(k)}`, 'must be a string, number or boolean');
    const s = String(v);
    try {
      validateCniArg(k, s);
    } catch {
      throw r.fail(`cni-args.${clip(k)}`, `is not a CNI_ARGS pair (key: letters, digits, "_", "." or "-"; value: no ";", "=", NUL or line break, at most 4096 bytes)`);
    }
    return [k, s];
  });
}

/** Seconds as a number, or a duration string ("30s"), within 1 ms–1 h; whole milliseconds. */
function readTimeout(r: ElementReader): number | undefined {
  const t = r.get('timeout');
  if (t === undefined) return undefined;
  let ms = NaN;
  try {
    ms = typeof t === 'number' ? t * 1000 : typeof t === 'string' ? parseDuration(t, 'timeout') : NaN;
  } catch {
    ms = NaN;
  }
  if (!Number.isFinite(ms) || ms <= 0) throw r.fail('timeout', 'must be a duration like "30s"');
  if (ms < MIN_TIMEOUT_MS || ms > MAX_TIMEOUT_MS) throw r.fail('timeout', `must be from 1ms to 1h, not ${quote(t)}`);
  // Timers take whole milliseconds.
  return Math.ceil(ms);
}

/** Gateways that parse, at most one per family, each of a family the element's ips have (if any). */
function readDefaultRoute(r: ElementReader, ips: string[] | undefined): string[] | undefined {
  const dr = r.strings('default-route');
  if (!dr) return undefined;
  const families = new Set(ips?.map((ip, i) => r.ip('ips', i, ip, true)));
  const seen = new Set<number>();
  dr.forEach((gw, i) => {
    const family = r.ip('default-route', i, gw, false);
    if (seen.has(family)) throw r.fail(`default-route[${i}]`, `is a second IPv${family} gateway`);
    seen.add(family);
    if (families.size > 0 && !families.has(family)) throw r.fail(`default-route[${i}]`, `${quote(gw)} is IPv${family} but no address in "ips" is`);
  });
  return dr;
}

function parseJSONItem(raw: unknown, i: number, podNamespace: string, where = NETWORKS_ANNOTATION, unnamed?: string): NetworkSelection {
  if (!isObject(raw)) throw refuse(`item ${i} must be an object`, where);
  let name: string;
  let namespace: string;
  let r: ElementReader;
  if (unnamed === undefined) {
    const n = Object.hasOwn(raw, 'name') ? raw['name'] : undefined;
    if (typeof n !== 'string') throw refuse(`item ${i} has no "name"`, where);
    name = n;
    checkLabel('name', name, name, where);
    r = new ElementReader(raw, name, where);
    namespace = r.string('namespace') ?? podNamespace;
    checkLabel('namespace', namespace, name, where);
  } else {
    // The network comes with its own config (the CNI door's /delegate): no NAD to name.
    for (const k of ['name', 'namespace']) if (Object.hasOwn(raw, k)) throw refuse(`"${k}" is not allowed when the network's config is given`, where);
    name = unnamed;
    namespace = podNamespace;
    r = new ElementReader(raw, name, where);
  }
  const label = name;
  const sel: NetworkSelection = { name, namespace, source: `${namespace}/${name}` };
  const iface = r.string('interface');
  if (iface !== undefined) {
    checkIfName(iface, label, where);
    sel.interface = iface;
    sel.source += `@${iface}`;
  }
  const ips = r.strings('ips');
  if (ips) {
    ips.forEach((ip, j) => r.ip('ips', j, ip, true));
    sel.ips = ips;
  }
  const mac = r.get('mac');
  if (mac !== undefined) {
    if (typeof mac !== 'string' || !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac)) throw r.fail('mac', 'is not a MAC address');
    sel.mac = mac;
  }
  const dr = readDefaultRoute(r, ips);
  if (dr) sel.defaultRoute = dr;
  const pm = readPortMappings(r);
  if (pm) sel.portMappings = pm;
  const bw = readBandwidth(r);
  if (bw) sel.bandwidth = bw;
  const args = readCniArgs(r);
  if (args) sel.cniArgs = args;
  const timeoutMs = readTimeout(r);
  if (timeoutMs !== undefined) sel.timeoutMs = timeoutMs;
  return sel;
}

/**
 * One network selection in the annotation's JSON element form (name, namespace, interface, ips,
 * mac, default-route, portMappings, bandwidth, cni-args, timeout), checked exactly as an element of
 * the annotation is; refusals start with `where`. With `configName`, the network is given by its
 * own config (no NAD): the element then has no name or namespace, and configName names it.
 */
export function parseNetworkElement(raw: unknown, podNamespace: string, where: string, configName?: string): NetworkSelection {
  if (isObject(raw) && jsonDepth(JSON.stringify(raw)) > MAX_JSON_DEPTH - 1) throw refuse(`the selection nests deeper than ${MAX_JSON_DEPTH - 1} levels`, where);
  return parseJSONItem(raw, 0, podNamespace, where, configName);
}

/** Parses the networks annotation in Multus's short or JSON-list form, every field checked. */
export function parseNetworksAnnotation(value: string, podNamespace: string): NetworkSelection[] {
  const text = value.trim();
  if (text === '') return [];
  if (Buffer.byteLength(text) > MAX_ANNOTATION_BYTES) throw refuse(`is larger than ${MAX_ANNOTATION_BYTES} bytes`);
  let items: NetworkSelection[];
  if (text.startsWith('[') || text.startsWith('{')) {
    if (jsonDepth(text) > MAX_JSON_DEPTH) throw refuse(`the JSON form nests deeper than ${MAX_JSON_DEPTH} levels`);
    let raw: unknown;
    try {
      raw = JSON.parse(text) as unknown;
    } catch (err) {
      throw refuse(`invalid JSON: ${clip(errorMessage(err))}`);
    }
    if (!Array.isArray(raw)) throw refuse('the JSON form must be a list');
    if (raw.length > MAX_ITEMS) throw refuse(`more than ${MAX_ITEMS} networks`);
    items = raw.map((r, i) => parseJSONItem(r, i, podNamespace));
  } else {
    const parts = text.split(',').map((s) => s.trim()).filter(Boolean);
    if (parts.length > MAX_ITEMS) throw refuse(`more than ${MAX_ITEMS} networks`);
    items = parts.map((s) => parseShort(s, podNamespace));
  }
  return items;
}

/** `[namespace/]name` of the default-network annotation. */
export function parseDefaultNetwork(value: string, podNamespace: string): NetworkSelection {
  const sel = parseShort(value.trim(), podNamespace, DEFAULT_NETWORK_ANNOTATION);
  if (sel.interface) throw refuse(`${quote(value)} must not name an interface (it is eth0)`, DEFAULT_NETWORK_ANNOTATION);
  return sel;
}

/** A file, or a document of one, that was not loaded, and why. */
export interface NADFileIssue {
  file: string;
  reason: string;
}

export interface NADLoad {
  /** By "namespace/name". */
  nads: Map<string, NAD>;
  /** NetworkAttachmentDefinitions that could not be read (bad YAML, no metadata.name...). */
  errors: NADFileIssue[];
  /** Documents that are something else (another kind, another API group): passed over, with why. */
  skipped: NADFileIssue[];
}

const NAD_KIND = 'NetworkAttachmentDefinition';
const NAD_GROUP = 'k8s.cni.cncf.io/';
/** What `kubectl get ... -o yaml` writes (List) and what the API answers a list with. */
const LIST_KINDS = new Set(['List', `${NAD_KIND}List`]);
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * Reads the NADs of one parsed document as Multus would find them in the API: the document is
 * a NAD, or a List / NetworkAttachmentDefinitionList of them; metadata.namespace defaults to
 * "default"; an empty spec.config stays empty (the conf-dir network of the NAD's name).
 */
function collectNADs(obj: unknown, file: string, where: string, out: NADLoad): void {
  const at = (reason: string): NADFileIssue => ({ file, reason: where ? `${where}: ${reason}` : reason });
  if (!isObject(obj)) {
    out.skipped.push(at('not a Kubernetes object'));
    return;
  }
  const kind = obj['kind'];
  if (typeof kind === 'string' && LIST_KINDS.has(kind)) {
    const items = obj['items'];
    if (!Array.isArray(items)) {
      out.errors.push(at(`a ${kind} needs an "items" list`));
      return;
    }
    // A NetworkAttachmentDefinitionList's items are NADs even without their own kind, as the API sends them.
    items.forEach((item, i) => {
      const implied = kind !== 'List' && isObject(item) && item['kind'] === undefined ? { ...item, kind: NAD_KIND } : item;
      collectNADs(implied, file, `${where ? `${where} ` : ''}items[${i}]`, out);
    });
    return;
  }
  if (kind !== NAD_KIND) {
    out.skipped.push(at(`kind ${JSON.stringify(kind ?? '')} is not a ${NAD_KIND}`));
    return;
  }
  const apiVersion = obj['apiVersion'];
  if (apiVersion !== undefined && (typeof apiVersion !== 'string' || !apiVersion.startsWith(NAD_GROUP))) {
    out.skipped.push(at(`apiVersion ${JSON.stringify(apiVersion)} is not ${NAD_GROUP}v1`));
    return;
  }
  const md = obj['metadata'];
  const name = isObject(md) ? md['name'] : undefined;
  if (typeof name !== 'string' || name === '') {
    out.errors.push(at('metadata.name is required'));
    return;
  }
  if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    out.errors.push(at(`metadata.name ${JSON.stringify(name.slice(0, 64))} is not a DNS-1123 subdomain`));
    return;
  }
  const ns = isObject(md) ? md['namespace'] : undefined;
  if (ns !== undefined && ns !== null && (typeof ns !== 'string' || (ns !== '' && (ns.length > 63 || !DNS1123_LABEL.test(ns))))) {
    out.errors.push(at(`metadata.namespace of ${name} is not a DNS-1123 label`));
    return;
  }
  const namespace = typeof ns === 'string' && ns !== '' ? ns : 'default';
  const spec = obj['spec'];
  const config = isObject(spec) ? spec['config'] : undefined;
  if (config !== undefined && config !== null && typeof config !== 'string') {
    out.errors.push(at(`spec.config of ${namespace}/${name} must be a string (the CNI config as JSON text)`));
    return;
  }
  const key = `${namespace}/${name}`;
  const first = out.nads.get(key);
  if (first) {
    out.errors.push(at(`${NAD_KIND} ${key} is already defined in ${first.file}; the first one is used`));
    return;
  }
  out.nads.set(key, { name, namespace, config: typeof config === 'string' ? config : '', file });
}

/**
 * The NetworkAttachmentDefinitions of a dir: YAML or JSON files, each holding one or several
 * documents (`---`), each a NAD or a list of them. Cached by the dir's signature, so a pod only
 * pays for a re-read after something changed.
 */
export class NADStore {
  private signature = '';
  private last: NADLoad = { nads: new Map(), errors: [], skipped: [] };

  constructor(private readonly dir: string) {}

  async load(): Promise<NADLoad> {
    const sig = await dirSignature(this.dir);
    if (sig === this.signature) return this.last;
    const out: NADLoad = { nads: new Map(), errors: [], skipped: [] };
    const names = sig === 'missing' ? [] : (await readdir(this.dir)).sort();
    for (const n of names) {
      if (!['.yaml', '.yml', '.json'].includes(extname(n))) continue;
      const file = join(this.dir, n);
      let docs;
      try {
        docs = parseAllDocuments(await readFile(file, 'utf8'));
      } catch (err) {
        out.errors.push({ file, reason: errorMessage(err) });
        continue;
      }
      const list = Array.isArray(docs) ? docs : [docs];
      list.forEach((doc, i) => {
        const where = list.length > 1 ? `document ${i + 1}` : '';
        if (doc.errors.length > 0) {
          out.errors.push({ file, reason: `${where ? `${where}: ` : ''}${doc.errors[0].message}` });
          return;
        }
        const obj: unknown = doc.toJS();
        if (obj !== null && obj !== undefined) collectNADs(obj, file, where, out);
      });
    }
    this.signature = sig;
    this.last = out;
    return out;
  }
}

/** Capability each annotation key needs some plugin of the network to declare. */
const CAPABILITY_OF: Array<[keyof NetworkSelection, string]> = [
  ['ips', 'ips'],
  ['mac', 'mac'],
  ['portMappings', 'portMappings'],
  ['bandwidth', 'bandwidth'],
];

function nadNetwork(sel: NetworkSelection, nads: Map<string, NAD>, findConfDirNetwork: (name: string) => NetworkConfigList | undefined): NetworkConfigList {
  const nad = nads.get(`${sel.namespace}/${sel.name}`);
  if (!nad) throw invalidArgument(`network "${sel.source}": no NetworkAttachmentDefinition ${sel.namespace}/${sel.name}`);
  if (nad.config.trim() === '') {
    const list = findConfDirNetwork(nad.name);
    if (!list) throw invalidArgument(`network "${sel.source}": NetworkAttachmentDefinition ${sel.namespace}/${sel.name} has no spec.config and no conf-dir network is named "${sel.name}"`);
    return list;
  }
  try {
    return nadConfList(nad)!;
  } catch (err) {
    throw invalidArgument(`network "${sel.source}": spec.config of ${nad.file} is not a valid CNI config: ${errorMessage(err)}`);
  }
}

/**
 * The network a NAD's spec.config describes, read as Multus reads it: a "name" that is missing or
 * empty is the NAD's metadata.name. Undefined for an empty spec.config, which means the conf-dir
 * network of that name. Throws for a config that is not a CNI config.
 */
export function nadConfList(nad: NAD): NetworkConfigList | undefined {
  if (nad.config.trim() === '') return undefined;
  const parsed = JSON.parse(nad.config) as unknown;
  if (!isObject(parsed)) throw new Error('spec.config must be a JSON object');
  const named = parsed['name'] === undefined || parsed['name'] === '' ? { ...parsed, name: nad.name } : parsed;
  const bytes = named === parsed ? Buffer.from(nad.config) : Buffer.from(JSON.stringify(named));
  return Array.isArray(named['plugins']) ? confListFromBytes(bytes, nad.file) : confListFromConfBytes(bytes, nad.file);
}

/**
 * Resolves every requested attachment before anything is created: NADs exist, configs parse,
 * interface names are unique, and every requested capability is declared by some plugin.
 */
export function resolveAttachments(
  selections: NetworkSelection[],
  nads: Map<string, NAD>,
  findConfDirNetwork: (name: string) => NetworkConfigList | undefined,
  taken: readonly string[],
): AttachmentRecord[] {
  const used = new Set(taken);
  const out: AttachmentRecord[] = [];
  selections.forEach((sel, i) => {
    const list = nadNetwork(sel, nads, findConfDirNetwork);
    const ifName = sel.interface ?? `net${i + 1}`;
    if (used.has(ifName)) throw invalidArgument(`network "${sel.source}": interface name "${ifName}" is used twice in the pod`);
    used.add(ifName);
    const declared = new Set(list.plugins.flatMap((p) => [...p.capabilities]));
    const caps: Record<string, unknown> = {};
    for (const [key, cap] of CAPABILITY_OF) {
      if (sel[key] === undefined) continue;
      if (!declared.has(cap)) throw invalidArgument(`network "${sel.source}": requests "${String(key)}" but no plugin of network "${list.name}" declares the "${cap}" capability`);
      caps[cap] = sel[key];
    }
    out.push({
      network: list.name,
      ifName,
      config: list.bytes.toString('base64'),
      secondary: true,
      ref: `${sel.namespace}/${sel.name}`,
      ...(Object.keys(caps).length ? { capabilityArgs: caps } : {}),
      ...(sel.cniArgs ? { cniArgs: sel.cniArgs } : {}),
      ...(sel.timeoutMs ? { timeoutMs: sel.timeoutMs } : {}),
      ...(sel.defaultRoute ? { defaultRoute: sel.defaultRoute } : {}),
    });
  });
  return out;
}

/** The cluster network replacement of the default-network annotation. */
export function resolveDefaultNetwork(sel: NetworkSelection, nads: Map<string, NAD>, findConfDirNetwork: (name: string) => NetworkConfigList | undefined): NetworkConfigList {
  try {
    return nadNetwork(sel, nads, findConfDirNetwork);
  } catch (err) {
    throw invalidArgument(errorMessage(err).replace(`network "${sel.source}"`, `annotation ${DEFAULT_NETWORK_ANNOTATION} "${sel.source}"`));
  }
}

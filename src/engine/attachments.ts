import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { confListFromBytes, confListFromConfBytes, type NetworkConfigList } from '../cni/config.js';
import { errorMessage } from '../cni/errors.js';
import { isObject, isStringArray } from '../util/json.js';
import { validateCniArg } from '../cni/runtime-conf.js';
import { parseDuration } from '../util/duration.js';
import { dirSignature } from './dir-signature.js';
import { invalidArgument } from './errors.js';
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
  portMappings?: unknown[];
  bandwidth?: Record<string, unknown>;
  cniArgs?: Record<string, string>;
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

function checkLabel(kind: string, v: string, item: string, annotation = NETWORKS_ANNOTATION): void {
  if (v.length > 63 || !DNS1123_LABEL.test(v)) {
    throw invalidArgument(`annotation ${annotation}: ${kind} "${v}" in "${item}" is not a DNS-1123 label`);
  }
}

function checkIfName(v: string, item: string, annotation = NETWORKS_ANNOTATION): void {
  if (!IFNAME_RE.test(v) || v === '.' || v === '..') {
    throw invalidArgument(`annotation ${annotation}: interface "${v}" in "${item}" must be 1-15 characters without "/", ":" or spaces`);
  }
}

/** `[namespace/]name[@ifname]` */
function parseShort(item: string, podNamespace: string, annotation = NETWORKS_ANNOTATION): NetworkSelection {
  const m = /^(?:([^/@]+)\/)?([^/@]+)(?:@(.+))?$/.exec(item);
  if (!m) throw invalidArgument(`annotation ${annotation}: "${item}" is not of the form [namespace/]name[@interface]`);
  const namespace = m[1] ?? podNamespace;
  checkLabel('namespace', namespace, item, annotation);
  checkLabel('name', m[2]!, item, annotation);
  if (m[3] !== undefined) checkIfName(m[3], item, annotation);
  return { name: m[2]!, namespace, ...(m[3] !== undefined ? { interface: m[3] } : {}), source: item };
}

function optStrings(o: Record<string, unknown>, key: string, item: string): string[] | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (!isStringArray(v)) throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: "${key}" of "${item}" must be a list of strings`);
  return v;
}

function parseJSONItem(raw: unknown, i: number, podNamespace: string): NetworkSelection {
  if (!isObject(raw)) throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: item ${i} must be an object`);
  const name = raw['name'];
  const label = typeof name === 'string' ? name : `item ${i}`;
  if (typeof name !== 'string') throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: item ${i} has no "name"`);
  checkLabel('name', name, label);
  const namespace = raw['namespace'] === undefined ? podNamespace : raw['namespace'];
  if (typeof namespace !== 'string') throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: "namespace" of "${label}" must be a string`);
  checkLabel('namespace', namespace, label);
  const sel: NetworkSelection = { name, namespace, source: `${namespace}/${name}` };
  const iface = raw['interface'];
  if (iface !== undefined) {
    if (typeof iface !== 'string') throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: "interface" of "${label}" must be a string`);
    checkIfName(iface, label);
    sel.interface = iface;
    sel.source += `@${iface}`;
  }
  const ips = optStrings(raw, 'ips', label);
  if (ips) sel.ips = ips;
  const mac = raw['mac'];
  if (mac !== undefined) {
    if (typeof mac !== 'string' || !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac)) throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: "mac" of "${label}" is not a MAC address`);
    sel.mac = mac;
  }
  const dr = optStrings(raw, 'default-route', label);
  if (dr) sel.defaultRoute = dr;
  const pm = raw['portMappings'];
  if (pm !== undefined) {
    if (!Array.isArray(pm)) throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: "portMappings" of "${label}" must be a list`);
    sel.portMappings = pm;
  }
  const bw = raw['bandwidth'];
  if (bw !== undefined) {
    if (!isObject(bw)) throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: "bandwidth" of "${label}" must be an object`);
    sel.bandwidth = bw;
  }
  const args = raw['cni-args'];
  if (args !== undefined) {
    if (!isObject(args)) throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: "cni-args" of "${label}" must be an object`);
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(args)) {
      const s = typeof v === 'string' ? v : JSON.stringify(v);
      try {
        validateCniArg(k, s);
      } catch (err) {
        throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: cni-args of "${label}": ${errorMessage(err)}`);
      }
      out[k] = s;
    }
    sel.cniArgs = out;
  }
  const timeout = raw['timeout'];
  if (timeout !== undefined) {
    try {
      sel.timeoutMs = typeof timeout === 'number' ? timeout * 1000 : typeof timeout === 'string' ? parseDuration(timeout, 'timeout') : NaN;
    } catch {
      sel.timeoutMs = NaN;
    }
    if (!Number.isFinite(sel.timeoutMs) || sel.timeoutMs! <= 0) throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: "timeout" of "${label}" must be a duration like "30s"`);
  }
  return sel;
}

/** Parses the networks annotation in Multus's short or JSON-list form. */
export function parseNetworksAnnotation(value: string, podNamespace: string): NetworkSelection[] {
  const text = value.trim();
  if (text === '') return [];
  let items: NetworkSelection[];
  if (text.startsWith('[') || text.startsWith('{')) {
    let raw: unknown;
    try {
      raw = JSON.parse(text) as unknown;
    } catch (err) {
      throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: invalid JSON: ${errorMessage(err)}`);
    }
    if (!Array.isArray(raw)) throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: the JSON form must be a list`);
    items = raw.map((r, i) => parseJSONItem(r, i, podNamespace));
  } else {
    items = text.split(',').map((s) => s.trim()).filter(Boolean).map((s) => parseShort(s, podNamespace));
  }
  if (items.length > MAX_ITEMS) throw invalidArgument(`annotation ${NETWORKS_ANNOTATION}: more than ${MAX_ITEMS} networks`);
  return items;
}

/** `[namespace/]name` of the default-network annotation. */
export function parseDefaultNetwork(value: string, podNamespace: string): NetworkSelection {
  const sel = parseShort(value.trim(), podNamespace, DEFAULT_NETWORK_ANNOTATION);
  if (sel.interface) throw invalidArgument(`annotation ${DEFAULT_NETWORK_ANNOTATION}: "${value}" must not name an interface (it is eth0)`);
  return sel;
}

/**
 * The NetworkAttachmentDefinitions of a dir (YAML or JSON, several per file allowed). Cached by
 * the dir's signature, so a pod only pays for a re-read after something changed.
 */
export class NADStore {
  private signature = '';
  private nads = new Map<string, NAD>();
  private errors: Array<{ file: string; reason: string }> = [];

  constructor(private readonly dir: string) {}

  async load(): Promise<{ nads: Map<string, NAD>; errors: Array<{ file: string; reason: string }> }> {
    const sig = await dirSignature(this.dir);
    if (sig === this.signature) return { nads: this.nads, errors: this.errors };
    const nads = new Map<string, NAD>();
    const errors: Array<{ file: string; reason: string }> = [];
    const names = sig === 'missing' ? [] : (await readdir(this.dir)).sort();
    for (const n of names) {
      if (!['.yaml', '.yml', '.json'].includes(extname(n))) continue;
      const file = join(this.dir, n);
      try {
        const docs = parseAllDocuments(await readFile(file, 'utf8'));
        for (const doc of docs) {
          if (doc.errors.length > 0) throw new Error(doc.errors[0]!.message);
          const obj: unknown = doc.toJS();
          if (obj === null || obj === undefined) continue;
          if (!isObject(obj) || obj['kind'] !== 'NetworkAttachmentDefinition') continue;
          const md = obj['metadata'];
          const spec = obj['spec'];
          if (!isObject(md) || typeof md['name'] !== 'string') throw new Error('metadata.name is required');
          const namespace = typeof md['namespace'] === 'string' ? md['namespace'] : 'default';
          const config = isObject(spec) && typeof spec['config'] === 'string' ? spec['config'] : '';
          nads.set(`${namespace}/${md['name']}`, { name: md['name'], namespace, config, file });
        }
      } catch (err) {
        errors.push({ file, reason: errorMessage(err) });
      }
    }
    this.signature = sig;
    this.nads = nads;
    this.errors = errors;
    return { nads, errors };
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
    const list = findConfDirNetwork(sel.name);
    if (!list) throw invalidArgument(`network "${sel.source}": NetworkAttachmentDefinition ${sel.namespace}/${sel.name} has no spec.config and no conf-dir network is named "${sel.name}"`);
    return list;
  }
  try {
    const bytes = Buffer.from(nad.config);
    const parsed = JSON.parse(nad.config) as unknown;
    return isObject(parsed) && Array.isArray(parsed['plugins']) ? confListFromBytes(bytes, nad.file) : confListFromConfBytes(bytes, nad.file);
  } catch (err) {
    throw invalidArgument(`network "${sel.source}": spec.config of ${nad.file} is not a valid CNI config: ${errorMessage(err)}`);
  }
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
      ...(sel.cniArgs ? { cniArgs: Object.entries(sel.cniArgs) } : {}),
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

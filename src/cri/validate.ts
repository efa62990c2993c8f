import { isIP } from 'node:net';
import { NamespaceMode, Protocol, type PodSandboxConfig, type PortMapping as CRIPortMapping } from '../gen/runtime/v1/api.js';
import type { BandWidth, PortMapping } from '../cni/networks.js';
import { invalidArgument } from './errors.js';
import { MAX_BANDWIDTH, MIN_BANDWIDTH, parseQuantity } from '../util/quantity.js';
import { quote } from '../util/quote.js';
import type { PodMetadata } from '../engine/store.js';

export const INGRESS_BANDWIDTH = 'kubernetes.io/ingress-bandwidth';
export const EGRESS_BANDWIDTH = 'kubernetes.io/egress-bandwidth';

// Sizes are bounded so a client cannot make us hand a plugin megabytes of env or stdin.
const MAX_NAME = 253;
const MAX_UID = 128;
const MAX_MAP_BYTES = 256 * 1024;
const MAX_PORT_MAPPINGS = 1024;
const MAX_DNS_ENTRIES = 64;
const MAX_PATH = 4096;
/** What can't appear in a value that becomes part of CNI_ARGS ("K=V;K=V"). */
const CNI_ARGS_UNSAFE = /[;=\0\r\n]/;
/** A DNS-1123 subdomain, as the kubelet checks a pod's hostname. */
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAMESPACE_MODES: ReadonlySet<number> = new Set([NamespaceMode.POD, NamespaceMode.CONTAINER, NamespaceMode.NODE, NamespaceMode.TARGET]);

function checkArgValue(field: string, value: string, max: number): void {
  if (value === '') throw invalidArgument(`${field} is required`);
  if (value.length > max) throw invalidArgument(`${field} ${quote(value)} is longer than ${max} characters`);
  if (CNI_ARGS_UNSAFE.test(value)) throw invalidArgument(`${field} ${quote(value)} must not contain ";", "=", NUL or a line break`);
}

function checkMap(field: string, m: Record<string, string>): void {
  let bytes = 0;
  for (const [k, v] of Object.entries(m)) {
    if (k === '') throw invalidArgument(`${field} has an empty key`);
    if (k.includes('\0') || v.includes('\0')) throw invalidArgument(`${field} key ${quote(k)} holds a NUL byte`);
    bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  if (bytes > MAX_MAP_BYTES) throw invalidArgument(`${field} are larger than ${MAX_MAP_BYTES} bytes`);
}


export function validateMetadata(config: PodSandboxConfig | undefined): PodMetadata {
  if (!config) throw invalidArgument('config is required');
  const m = config.metadata;
  if (!m) throw invalidArgument('config.metadata is required');
  checkArgValue('config.metadata.name', m.name, MAX_NAME);
  checkArgValue('config.metadata.namespace', m.namespace, MAX_NAME);
  checkArgValue('config.metadata.uid', m.uid, MAX_UID);
  if (m.attempt < 0) throw invalidArgument('config.metadata.attempt must not be negative');
  return { name: m.name, namespace: m.namespace, uid: m.uid, attempt: m.attempt };
}

const PROTOCOL_NAMES: Record<number, string> = { [Protocol.TCP]: 'tcp', [Protocol.UDP]: 'udp', [Protocol.SCTP]: 'sctp' };

/** portMappings capability: only mappings with a host port, protocol lower-case, as the kubelet/containerd send them. */
export function toPortMappings(mappings: CRIPortMapping[]): PortMapping[] {
  if (mappings.length > MAX_PORT_MAPPINGS) throw invalidArgument(`config.port_mappings has more than ${MAX_PORT_MAPPINGS} entries`);
  const out: PortMapping[] = [];
  mappings.forEach((p, i) => {
    const f = `config.port_mappings[${i}]`;
    const protocol = PROTOCOL_NAMES[p.protocol];
    if (!protocol) throw invalidArgument(`${f}.protocol ${p.protocol} is not a known protocol (TCP=0, UDP=1, SCTP=2)`);
    if (!Number.isInteger(p.containerPort) || p.containerPort < 1 || p.containerPort > 65535) {
      throw invalidArgument(`${f}.container_port ${p.containerPort} is out of range 1-65535`);
    }
    if (!Number.isInteger(p.hostPort) || p.hostPort < 0 || p.hostPort > 65535) {
      throw invalidArgument(`${f}.host_port ${p.hostPort} is out of range 0-65535 (0 means no host port)`);
    }
    if (p.hostIp !== '' && isIP(p.hostIp) === 0) throw invalidArgument(`${f}.host_ip ${quote(p.hostIp)} is not an IP address`);
    if (p.hostPort === 0) return;
    out.push({ hostPort: p.hostPort, containerPort: p.containerPort, protocol, ...(p.hostIp ? { hostIP: p.hostIp } : {}) });
  });
  return out;
}

/** A bandwidth quantity: a finite number of bits per second within the kubelet's 1k–1P. */
export function bandwidthQuantity(field: string, raw: string): number {
  const v = parseQuantity(raw);
  if (v === undefined) throw invalidArgument(`${field}: ${quote(raw)} is not a resource quantity with a finite value (e.g. 10M, 1G)`);
  if (v < MIN_BANDWIDTH) throw invalidArgument(`${field}: ${quote(raw)} is unreasonably small (< 1kbit)`);
  if (v > MAX_BANDWIDTH) throw invalidArgument(`${field}: ${quote(raw)} is unreasonably large (> 1Pbit)`);
  return v;
}

function bandwidthValue(annotations: Record<string, string>, key: string): number | undefined {
  const raw = Object.hasOwn(annotations, key) ? annotations[key] : undefined;
  return raw === undefined ? undefined : bandwidthQuantity(`annotation ${key}`, raw);
}

/**
 * The bandwidth capability from the pod annotations. The CRI has no burst, so the burst is set
 * as large as the bandwidth plugin accepts (as containerd does), which makes the rate the limit.
 */
export function toBandwidth(annotations: Record<string, string>): BandWidth | undefined {
  const ingress = bandwidthValue(annotations, INGRESS_BANDWIDTH);
  const egress = bandwidthValue(annotations, EGRESS_BANDWIDTH);
  if (ingress === undefined && egress === undefined) return undefined;
  const burst = 2 ** 32 - 1;
  return {
    ...(ingress !== undefined ? { ingressRate: ingress, ingressBurst: burst } : {}),
    ...(egress !== undefined ? { egressRate: egress, egressBurst: burst } : {}),
  };
}

export interface ValidatedPod {
  metadata: PodMetadata;
  hostNetwork: boolean;
  portMappings: PortMapping[];
  bandwidth: BandWidth | undefined;
  dns: { servers: string[]; searches: string[]; options: string[] } | undefined;
  cgroupParent: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** Everything a RunPodSandbox request carries that reaches a plugin, checked before anything is created. */
export function validatePodConfig(config: PodSandboxConfig | undefined): ValidatedPod {
  const metadata = validateMetadata(config);
  const c = config!;
  checkMap('config.labels', c.labels);
  checkMap('config.annotations', c.annotations);
  const portMappings = toPortMappings(c.portMappings);
  const bandwidth = toBandwidth(c.annotations);
  let dns: ValidatedPod['dns'];
  if (c.dnsConfig) {
    const { servers, searches, options } = c.dnsConfig;
    if (servers.length + searches.length + options.length > MAX_DNS_ENTRIES) throw invalidArgument(`config.dns_config has more than ${MAX_DNS_ENTRIES} entries`);
    servers.forEach((s, i) => {
      if (isIP(s) === 0) throw invalidArgument(`config.dns_config.servers[${i}] ${quote(s)} is not an IP address`);
    });
    for (const [kind, list] of [['searches', searches], ['options', options]] as const) {
      list.forEach((v, i) => {
        if (/[\0\r\n]/.test(v) || v.length > MAX_NAME) throw invalidArgument(`config.dns_config.${kind}[${i}] ${quote(v)} is not a valid search domain or option`);
      });
    }
    if (servers.length || searches.length || options.length) dns = { servers, searches, options };
  }
  if (c.hostname !== '' && (c.hostname.length > MAX_NAME || !DNS1123_SUBDOMAIN.test(c.hostname))) {
    throw invalidArgument(`config.hostname ${quote(c.hostname)} is not a DNS-1123 subdomain of at most ${MAX_NAME} characters`);
  }
  const cgroupParent = c.linux?.cgroupParent ?? '';
  if (cgroupParent.length > MAX_PATH || /[\0\r\n]/.test(cgroupParent) || cgroupParent.split('/').includes('..')) {
    throw invalidArgument(`config.linux.cgroup_parent ${quote(cgroupParent)} is not a valid cgroup path (no "..", NUL or line breaks, at most ${MAX_PATH} characters)`);
  }
  const ns = c.linux?.securityContext?.namespaceOptions;
  for (const kind of ['network', 'pid', 'ipc'] as const) {
    const mode = ns?.[kind];
    if (mode !== undefined && !NAMESPACE_MODES.has(mode)) {
      throw invalidArgument(`config.linux.security_context.namespace_options.${kind} ${mode} is not a namespace mode (POD=0, CONTAINER=1, NODE=2, TARGET=3)`);
    }
  }
  const hostNetwork = ns?.network === NamespaceMode.NODE;
  return { metadata, hostNetwork, portMappings, bandwidth, dns, cgroupParent, labels: c.labels, annotations: c.annotations };
}

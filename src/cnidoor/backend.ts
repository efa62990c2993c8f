/**
 * What the CNI door asks of the pod-network engine, in pod-network terms. The door (server.ts)
 * has already checked every field below; the backend never sees a raw request.
 */
import type { JSONValue } from '../cni/json.js';
import type { Result } from '../cni/result.js';

/** The pod a call is for, parsed out of CNI_ARGS (K8S_POD_*). */
export interface PodIdentity {
  namespace: string;
  name: string;
  /** '' when the runtime did not send K8S_POD_UID. */
  uid: string;
  /** K8S_POD_INFRA_CONTAINER_ID, '' when absent. */
  infraContainerID: string;
}

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  /** 'tcp' | 'udp' | 'sctp', lower-case whatever casing the runtime used. */
  protocol: 'tcp' | 'udp' | 'sctp';
  /** '' for every host address. */
  hostIP: string;
}

/** Bits per second and bits, as the bandwidth plugin takes them. */
export interface Bandwidth {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

export interface DNSConfig {
  servers: string[];
  searches: string[];
  options: string[];
}

/**
 * The stdin's `runtimeConfig`, one typed shape whether the runtime wrote containerd's Go field
 * names (HostPort, IngressRate, Servers...) or the CNI conventions' camelCase.
 */
export interface RuntimeConfig {
  portMappings: PortMapping[];
  bandwidth: Bandwidth | undefined;
  dns: DNSConfig | undefined;
  /** `io.kubernetes.cri.pod-annotations`. */
  podAnnotations: ReadonlyMap<string, string>;
  /** `cgroupPath`, '' when absent. */
  cgroupPath: string;
}

/** multus' DelegateInterfaceAttributes: what a hot-plug request asks of the new interface. */
export interface InterfaceAttributes {
  /** Addresses, each an IP or a CIDR. */
  ips: string[];
  /** '' when not requested. */
  mac: string;
  cniArgs: ReadonlyMap<string, JSONValue>;
}

/** What every call from the shim carries about the network it is for. */
export interface NetworkCall {
  /** CNI_PATH, split on ':' (the daemon uses its own bin dirs; kept for the record). */
  path: readonly string[];
  /** The cniVersion of the runtime's stdin. */
  cniVersion: string;
  /** The shim config's `name`. */
  configName: string;
  /** The shim config's `network`: a network of podnetd's conf dir, or undefined for the default. */
  network: string | undefined;
  /** The shim config's `runtimeHandler`, undefined for the default handler. */
  runtimeHandler: string | undefined;
  /** The stdin bytes exactly as the runtime sent them. */
  config: Buffer;
}

/** ADD, DEL and CHECK of one attachment (CNI_CONTAINERID, CNI_IFNAME). */
export interface AttachmentCall extends NetworkCall {
  command: 'ADD' | 'DEL' | 'CHECK';
  containerID: string;
  /** CNI_NETNS; '' when the runtime sent none (DEL after the namespace is gone). */
  netns: string;
  ifName: string;
  /** CNI_ARGS in a Map (keys as sent). */
  args: ReadonlyMap<string, string>;
  /** From CNI_ARGS; always set on ADD, undefined on DEL/CHECK when the runtime sent no K8S_POD_*. */
  pod: PodIdentity | undefined;
  runtimeConfig: RuntimeConfig;
  /** The stdin's prevResult, in the current (1.x) shape. */
  prevResult: Result | undefined;
  interfaceAttributes: InterfaceAttributes | undefined;
}

export interface ValidAttachment {
  containerID: string;
  ifName: string;
}

/** GC (1.1.0): release whatever this door's pods hold that is not in the list. */
export interface GCCall extends NetworkCall {
  validAttachments: ValidAttachment[];
}

export type StatusCall = NetworkCall;

/** /delegate (hot-plug, issue 14): one network's config onto a running pod. */
export interface DelegateCall {
  command: 'ADD' | 'DEL';
  containerID: string;
  netns: string;
  ifName: string;
  args: ReadonlyMap<string, string>;
  pod: PodIdentity;
  /** The network's name and version from its config. */
  networkName: string;
  cniVersion: string;
  /** The network's CNI config bytes (a conflist or a single plugin config), as sent. */
  config: Buffer;
  interfaceAttributes: InterfaceAttributes | undefined;
}

/**
 * The pod-network engine as the CNI door sees it. Results are in the current shape (1.x); the
 * door converts them to what the caller asked for. Throw CNIDoorError for a CNI error code the
 * runtime must see (11 while not ready, 3, 50/51...); anything else is reported as code 999.
 */
export interface CNIDoorBackend {
  /** Recovery has finished and the networks are loaded. */
  ready(): boolean;
  add(call: AttachmentCall, signal: AbortSignal): Promise<Result>;
  del(call: AttachmentCall, signal: AbortSignal): Promise<void>;
  check(call: AttachmentCall, signal: AbortSignal): Promise<void>;
  gc(call: GCCall, signal: AbortSignal): Promise<void>;
  status(call: StatusCall, signal: AbortSignal): Promise<void>;
  delegateAdd(call: DelegateCall, signal: AbortSignal): Promise<Result>;
  delegateDel(call: DelegateCall, signal: AbortSignal): Promise<void>;
}

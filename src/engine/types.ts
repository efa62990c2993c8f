// The pod-network engine's interface: what a front door (the CRI service, the CNI door) asks of
// it, in pod-network terms. Nothing here knows gRPC or CNI's wire format; errors are EngineErrors
// (./errors.ts), which each door maps to its own codes once.
import type { BandWidth, DNSCapability, PortMapping } from '../cni/networks.js';
import type { NetworkConfigList } from '../cni/config.js';
import type { DNS, Result } from '../cni/result.js';
import type { RuntimeConf } from '../cni/runtime-conf.js';
import type { GCReport } from './gc.js';
import type { NetworkStatus } from './network-manager.js';
import type { AttachmentRecord, SandboxRecord } from './store.js';
import type { JSONObject } from '../util/json.js';

/** The cluster network's interface unless a door names another (and cnitool's CNI_IFNAME default). */
export const DEFAULT_IFNAME = 'eth0';

/** Which front door a pod came through: stored in its record, labels its metrics and logs. */
export type Door = 'cri' | 'cni';

/**
 * Who owns the pod's network namespace. `podnet`: the engine creates it, and removes it on
 * teardown, recovery or by `podnet doctor --fix`. `runtime`: the container runtime made it and
 * removes it; podnet never creates, unmounts or removes it, whatever happens.
 */
export type NetnsOwner = 'podnet' | 'runtime';

/** The pod a sandbox belongs to. CNI_ARGS carry no attempt, so the CNI door leaves it out. */
export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
  /** When set, at most one live sandbox per pod attempt (the CRI's rule): a second is already-exists. */
  attempt?: number;
}

/** The namespace the pod's networks go into. */
export type NetnsSpec =
  /** The engine makes one under its netns dir (CRI door). */
  | { owner: 'podnet' }
  /** The runtime's, at this absolute path; it must exist (CNI door: CNI_NETNS). */
  | { owner: 'runtime'; path: string };

/** Which networks the pod joins as its cluster network (and, with max_conf_num > 1, the next ones). */
export type NetworkSelector =
  /** The handler's conf dir when it has one ([runtimes.<name>] cni_conf_dir), else the default; '' is the default handler. */
  | { runtimeHandler: string }
  /** One network of a conf dir, by its name. */
  | { network: string };

/** Facts only the CRI door needs; the engine stores them in the record and never reads them. */
export interface CRIFacts {
  /** The PodSandboxConfig as JSON (proto field names in camelCase). */
  config: Record<string, unknown>;
  /** Nanoseconds since the epoch, as the CRI reports created_at (a decimal string: JSON has no int64). */
  createdAt: string;
}

/** Everything the engine needs to set up a pod's networks. */
export interface SetupRequest {
  /** The sandbox id (CRI) or CNI_CONTAINERID (CNI door): letters, digits, "_", "." and "-". */
  id: string;
  door: Door;
  pod: PodRef;
  netns: NetnsSpec;
  /** The node's namespace: no namespace, no plugin; the record only lists the pod (CRI host-network pods). */
  hostNetwork?: boolean;
  networks: NetworkSelector;
  /** Add loopback beside the cluster network (CRI: yes; CNI door: no, the runtime runs it itself). */
  loopback: boolean;
  /** The cluster network's interface (default eth0). */
  clusterIfName?: string;
  /** Pod annotations: the Multus networks and default-network annotations, and the pod-annotations capability. */
  annotations?: Record<string, string>;
  portMappings?: PortMapping[];
  bandwidth?: BandWidth;
  dns?: DNSCapability;
  cgroupPath?: string;
  /** CNI_ARGS beyond the K8S_POD_* ones the engine sets from `pod` (those keys, and IgnoreUnknown, are not repeated). */
  cniArgs?: Array<[string, string]>;
  cri?: CRIFacts;
}

export interface SetupOutcome {
  record: Readonly<SandboxRecord>;
  /** The cluster network's result in current CNI form (what a CNI ADD answers); undefined for host-network pods. */
  result: Result | undefined;
}

/** What a setUp would do, with nothing created (Engine.plan, for `podnet explain`). */
export interface SetupPlan {
  /** The record setUp would write (phase creating; never stored). */
  record: Readonly<SandboxRecord>;
  /** Each attachment as the record lists it (loopback and the cluster network first, run in parallel unless setup_serially; then the extra ones in order), with the config list and runtime conf its plugins get. */
  attachments: ReadonlyArray<{ attachment: Readonly<AttachmentRecord>; list: NetworkConfigList; runtimeConf: RuntimeConf }>;
}

export interface TeardownOptions {
  /** Forget the record once everything is released (CRI RemovePodSandbox, CNI DEL); otherwise it stays notready (StopPodSandbox). */
  forget?: boolean;
}

export interface GCRequest {
  /** Only this door's pods are released (its runtime knows only those). */
  door?: Door;
  /**
   * The runtime's valid attachments (CNI GC): this door's pods whose id is not listed are torn
   * down and forgotten. Without it only cache entries of pods already torn down are released.
   */
  validAttachments?: ReadonlyArray<{ containerID: string; ifname: string }>;
  /** With validAttachments: only pods set up on these networks (a runtime's GC is per network config). */
  networks?: NetworkSelector;
}

export interface RecoveryReport {
  finished: number;
  orphans: number;
  corrupt: string[];
}

/** Who is told about the engine's own work (metrics). */
/** A step of a sandbox's life, as the engine reaches it (a door may report these to its clients). */
export type SandboxStep = 'created' | 'ready' | 'stopped' | 'removed';

export interface EngineObserver {
  netnsOp?(op: 'create' | 'remove', door: Door, durationMs: number): void;
  /** A hot-plug attach or detach finished: `ok`, or the EngineError kind it failed with. */
  hotplug?(op: 'attach' | 'detach', door: Door, outcome: string): void;
  /** Called after the record of the step is on disk (for `removed`: after it is gone). */
  sandboxStep?(step: SandboxStep, rec: Readonly<SandboxRecord>): void;
}

/**
 * One network to attach to a running pod (hot-plug): an element of the networks annotation's
 * JSON form (`name`, `namespace`, `interface`, `ips`, `mac`, `portMappings`, `bandwidth`,
 * `cni-args`, `default-route`, `timeout`), checked as the annotation's elements are. With
 * `config`, the network is given by its CNI config bytes (a conflist or one plugin's config, the
 * CNI door's /delegate) instead of a NetworkAttachmentDefinition: the element then has no `name`
 * or `namespace`.
 */
export interface AttachSelection {
  element: JSONObject;
  config?: Buffer;
}

/** Multus's network-status entry of one interface. */
export interface NetworkStatusEntry {
  name: string;
  interface: string;
  ips: string[];
  mac?: string;
  default: boolean;
  dns?: DNS;
}

export interface AttachOutcome {
  /** The attachment's network-status entry. */
  status: NetworkStatusEntry;
  /** Its CNI result in current form (what a /delegate ADD answers). */
  result: Result;
}

/** Hot-plug: attach and detach networks on a ready pod (src/engine/hotplug.ts). */
export interface HotplugEngine {
  /**
   * Adds one network to a ready pod, on the requested interface or the next free netN. Resolved
   * and validated before anything runs; a failed ADD is rolled back. Attaching the same network
   * on the same interface again answers the same entry.
   */
  attach(id: string, selection: AttachSelection, signal: AbortSignal): Promise<AttachOutcome>;
  /** DEL of one attachment of a ready pod (not its cluster network); a failed DEL is retried by the next detach, Stop or GC. */
  detach(id: string, ifName: string, signal: AbortSignal): Promise<void>;
  /** The pod's live network-status list. */
  listNetworks(id: string): NetworkStatusEntry[];
}

/** The engine as the doors see it. */
export interface PodNetworkEngine {
  /** Sets up every network of the pod: record first, then the namespace (when podnet owns it), then ADD; any failure undoes all of it. */
  setUp(req: SetupRequest, signal: AbortSignal): Promise<SetupOutcome>;
  /**
   * DEL of every attachment from the config it was added with, then removal of the namespace if
   * podnet owns it. Idempotent; an unknown id is fine; works with the namespace gone (DEL runs
   * with an empty CNI_NETNS). A failed DEL keeps the record, notready with the error, to retry.
   */
  tearDown(id: string, opts?: TeardownOptions): Promise<void>;
  /** CHECK of every attachment of a ready pod. */
  check(id: string, signal: AbortSignal): Promise<void>;
  /** One pod's record; pods still being set up are included (phase creating). */
  get(id: string): Readonly<SandboxRecord> | undefined;
  /** Full id or unique prefix among a door's pods (or all); invalid-request when ambiguous. */
  resolve(idOrPrefix: string, door?: Door): Readonly<SandboxRecord> | undefined;
  list(filter?: { door?: Door }): ReadonlyArray<Readonly<SandboxRecord>>;
  /** Whether a pod could be set up on these networks now, and if not why (CNI STATUS, /readyz, NetworkReady). */
  networkReadiness(selector: NetworkSelector): NetworkStatus;
  /**
   * Before serving: finish or undo what a crash interrupted, remove namespaces of ours no record
   * owns. setUp, tearDown, check and gc called while it runs wait for it.
   */
  recover(): Promise<RecoveryReport>;
  /** CNI garbage collection, with no ADD or DEL in flight. */
  gc(req?: GCRequest): Promise<GCReport>;
}

/** A runtime handler's own networks (containerd's [plugins.cri.containerd.runtimes.<name>]). */
export interface RuntimeHandlerConfig {
  cniConfDir?: string;
  cniMaxConfNum?: number;
}

export type IPPref = 'ipv4' | 'ipv6' | 'cni';

export interface CNISettings {
  binDirs: string[];
  confDir: string;
  cacheDir: string;
  maxConfNum: number;
  confTemplate: string;
  ipPref: IPPref;
  setupSerially: boolean;
  pluginTimeoutMs: number;
}

/** The engine's settings (a part of podnetd's config; defaults in src/cri/config.ts). */
export interface EngineConfig {
  defaultRuntimeHandler: string;
  /** Bound on setups and teardowns running at once. */
  maxConcurrentSetups: number;
  /** Teardown after a failure, or a stop whose client gave up, gets this long on its own. */
  cleanupTimeoutMs: number;
  cni: CNISettings;
  runtimes: Record<string, RuntimeHandlerConfig>;
}

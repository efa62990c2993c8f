// podnet.v1.PodNetworks: hot-plug on podnetd's socket, beside the CRI. Translates the messages of
// proto/podnet/v1/podnetworks.proto into engine calls; the engine checks the selection as it
// checks an element of the networks annotation.
import type { HotplugEngine, NetworkStatusEntry, PodNetworkEngine } from '../engine/types.js';
import type {
  AttachNetworkRequest,
  AttachNetworkResponse,
  DetachNetworkRequest,
  DetachNetworkResponse,
  ListNetworksRequest,
  ListNetworksResponse,
  NetworkSelection,
  NetworkStatus,
} from '../gen/podnet/v1/podnetworks.js';
import type { JSONObject } from '../util/json.js';
import { invalidArgument } from './errors.js';
import { lookup } from './sandbox-lookup.js';
import type { CallContext } from './sandbox-service.js';

/**
 * The selection message as the annotation's JSON element: a field left at its zero value is not
 * set (a port of 0 is still sent, so the engine refuses it by name).
 */
export function selectionElement(sel: NetworkSelection): JSONObject {
  const el: JSONObject = {};
  if (sel.name) el['name'] = sel.name;
  if (sel.namespace) el['namespace'] = sel.namespace;
  if (sel.interface) el['interface'] = sel.interface;
  if (sel.ips.length) el['ips'] = sel.ips;
  if (sel.mac) el['mac'] = sel.mac;
  if (sel.portMappings.length) {
    el['portMappings'] = sel.portMappings.map((p) => ({ hostPort: p.hostPort, containerPort: p.containerPort, ...(p.protocol ? { protocol: p.protocol } : {}), ...(p.hostIp ? { hostIP: p.hostIp } : {}) }));
  }
  if (sel.bandwidth) {
    const bw: JSONObject = {};
    // Beyond 2^53 precision goes, but the engine's bound (1P) is far below it: refused either way.
    for (const [k, v] of Object.entries(sel.bandwidth) as Array<[string, bigint]>) if (v !== 0n) bw[k] = Number(v);
    if (Object.keys(bw).length) el['bandwidth'] = bw;
  }
  const args = Object.entries(sel.cniArgs);
  if (args.length) el['cni-args'] = Object.fromEntries(args);
  if (sel.defaultRoute.length) el['default-route'] = sel.defaultRoute;
  if (sel.timeout) el['timeout'] = sel.timeout;
  return el;
}

export function toNetworkStatus(e: NetworkStatusEntry): NetworkStatus {
  const dns = e.dns;
  return {
    name: e.name,
    interface: e.interface,
    ips: e.ips,
    mac: e.mac ?? '',
    default: e.default,
    dns: dns ? { nameservers: dns.nameservers ?? [], domain: dns.domain ?? '', search: dns.search ?? [], options: dns.options ?? [] } : undefined,
  };
}

export class PodNetworksService {
  constructor(private readonly engine: PodNetworkEngine & HotplugEngine) {}

  /** Either door's sandbox, by full id or unique prefix. */
  private sandbox(idOrPrefix: string): string {
    return lookup(this.engine, idOrPrefix, true, 'any')!.id;
  }

  async attachNetwork(req: AttachNetworkRequest, ctx: CallContext): Promise<AttachNetworkResponse> {
    const id = this.sandbox(req.podSandboxId);
    if (!req.network) throw invalidArgument('network is required');
    const out = await this.engine.attach(id, { element: selectionElement(req.network) }, ctx.signal);
    return { status: toNetworkStatus(out.status) };
  }

  async detachNetwork(req: DetachNetworkRequest, ctx: CallContext): Promise<DetachNetworkResponse> {
    const id = this.sandbox(req.podSandboxId);
    if (!req.interface) throw invalidArgument('interface is required');
    await this.engine.detach(id, req.interface, ctx.signal);
    return {};
  }

  listNetworks(req: ListNetworksRequest): ListNetworksResponse {
    return { networks: this.engine.listNetworks(this.sandbox(req.podSandboxId)).map(toNetworkStatus) };
  }
}

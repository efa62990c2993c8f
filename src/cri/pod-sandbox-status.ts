import { NamespaceMode, PodSandboxConfig, type PodSandboxStatus, type PodSandboxStatusRequest, type PodSandboxStatusResponse } from '../gen/runtime/v1/api.js';
import { networkStatus } from '../engine/network-status.js';
import type { SandboxRecord } from '../engine/store.js';
import { criFacts, lookup, toState } from './sandbox-lookup.js';
import type { CallContext, SandboxContext } from './sandbox-service.js';

/** PodSandboxStatus: the record as the CRI reports it; verbose adds the CNI results and network-status. */
export function podSandboxStatus(s: SandboxContext, req: PodSandboxStatusRequest, _call: CallContext): PodSandboxStatusResponse {
  const rec = lookup(s.engine, req.podSandboxId, true)!;
  const response: PodSandboxStatusResponse = { status: sandboxStatus(rec), info: {}, containersStatuses: [], timestamp: 0n };
  if (req.verbose) response.info = { info: JSON.stringify(verboseInfo(rec)) };
  return response;
}

/** A CRI door sandbox's status, as PodSandboxStatus and the container events report it. */
export function sandboxStatus(rec: Readonly<SandboxRecord>): PodSandboxStatus {
  const facts = criFacts(rec);
  const config = PodSandboxConfig.fromJSON(facts.config);
  const nsOptions = config.linux?.securityContext?.namespaceOptions;
  const [primary, ...additional] = rec.ips;
  return {
    id: rec.id,
    metadata: { ...rec.metadata, attempt: rec.metadata.attempt ?? 0 },
    state: toState(rec),
    createdAt: BigInt(facts.createdAt),
    network: { ip: primary?.ip ?? '', additionalIps: additional.map((x) => ({ ip: x.ip })) },
    linux: {
      namespaces: {
        options: {
          network: nsOptions?.network ?? NamespaceMode.POD,
          pid: nsOptions?.pid ?? NamespaceMode.POD,
          ipc: nsOptions?.ipc ?? NamespaceMode.POD,
          targetId: nsOptions?.targetId ?? '',
          usernsOptions: nsOptions?.usernsOptions,
        },
      },
    },
    labels: config.labels,
    annotations: config.annotations,
    runtimeHandler: rec.runtimeHandler,
  };
}

function verboseInfo(rec: Readonly<SandboxRecord>): Record<string, unknown> {
  return {
    phase: rec.phase,
    runtimeHandler: rec.runtimeHandler,
    netNamespacePath: rec.netnsPath,
    hostNetwork: rec.hostNetwork,
    config: criFacts(rec).config,
    attachments: rec.attachments.map((a) => ({ network: a.network, ifName: a.ifName })),
    cniResult: rec.results,
    'network-status': networkStatus(rec),
    pluginTimings: rec.timings,
    ...(rec.lastError ? { lastError: rec.lastError } : {}),
  };
}

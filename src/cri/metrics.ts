import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { status } from '@grpc/grpc-js';
import type { PluginExecEvent } from '../cni/cni.js';
import type { SandboxPhase, SandboxRecord } from '../engine/store.js';
import type { Door } from '../engine/types.js';

/**
 * podnetd's Prometheus metrics. Names follow the Prometheus conventions: a unit suffix once
 * (`_seconds`), `_total` only on counters, labels rather than name variants.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly rpcs: Counter<'door' | 'method' | 'code'>;
  private readonly rpcDuration: Histogram<'door' | 'method'>;
  private readonly cniDuration: Histogram<'door' | 'network' | 'plugin' | 'verb' | 'outcome'>;
  private readonly netnsDuration: Histogram<'door' | 'op'>;
  readonly gcRemoved: Counter<'kind'>;
  private readonly hotplug: Counter<'door' | 'op' | 'outcome'>;
  private readonly configValid: Gauge<'source' | 'file'>;
  /** Files each source last reported, so a file that left the conf dir leaves the gauge too. */
  private readonly configFiles = new Map<string, string[]>();

  constructor(sandboxes: () => ReadonlyArray<Readonly<SandboxRecord>>) {
    collectDefaultMetrics({ register: this.registry, prefix: 'podnet_' });
    const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    this.rpcs = new Counter({ name: 'podnet_rpc_requests_total', help: 'Requests served, by door, method and status code.', labelNames: ['door', 'method', 'code'], registers: [this.registry] });
    this.rpcDuration = new Histogram({ name: 'podnet_rpc_duration_seconds', help: 'Request latency, by door and method.', labelNames: ['door', 'method'], buckets, registers: [this.registry] });
    this.cniDuration = new Histogram({
      name: 'podnet_cni_plugin_duration_seconds',
      help: 'One CNI plugin execution, by door of the pod, network, plugin type, verb and outcome.',
      labelNames: ['door', 'network', 'plugin', 'verb', 'outcome'],
      buckets,
      registers: [this.registry],
    });
    this.netnsDuration = new Histogram({ name: 'podnet_netns_operation_duration_seconds', help: 'Network namespace create/remove latency, by door.', labelNames: ['door', 'op'], buckets, registers: [this.registry] });
    this.gcRemoved = new Counter({ name: 'podnet_gc_removed_total', help: 'Leaked resources found and released by garbage collection.', labelNames: ['kind'], registers: [this.registry] });
    this.hotplug = new Counter({
      name: 'podnet_network_hotplug_total',
      help: 'Networks attached to or detached from running pods, by door of the pod, op (attach, detach) and outcome (ok, or the error kind).',
      labelNames: ['door', 'op', 'outcome'],
      registers: [this.registry],
    });
    this.configValid = new Gauge({ name: 'podnet_network_config_valid', help: '1 if a network config file loaded, 0 if it was rejected.', labelNames: ['source', 'file'], registers: [this.registry] });
    new Gauge({
      name: 'podnet_sandboxes',
      help: 'Pod sandboxes by door and phase.',
      labelNames: ['door', 'phase'],
      registers: [this.registry],
      collect() {
        const zero = (): Record<SandboxPhase, number> => ({ creating: 0, ready: 0, stopping: 0, notready: 0 });
        const counts: Record<Door, Record<SandboxPhase, number>> = { cri: zero(), cni: zero() };
        for (const r of sandboxes()) counts[r.door][r.phase]++;
        for (const [door, byPhase] of Object.entries(counts)) for (const [phase, n] of Object.entries(byPhase)) this.set({ door, phase }, n);
      },
    });
  }

  /** A CRI RPC, with its gRPC status. */
  observeRPC(method: string, durationMs: number, code: status): void {
    this.observeRequest('cri', method, durationMs, status[code] ?? String(code));
  }

  /** A request of either door; code is the door's own (a gRPC status name, a CNI error code). */
  observeRequest(door: Door, method: string, durationMs: number, code: string): void {
    this.rpcs.inc({ door, method, code });
    this.rpcDuration.observe({ door, method }, durationMs / 1000);
  }

  /** A plugin run, labelled with the door of the pod it ran for (none when no record is known). */
  observePlugin(ev: PluginExecEvent, door: Door | undefined): void {
    this.cniDuration.observe({ door: door ?? 'none', network: ev.network, plugin: ev.plugin, verb: ev.verb, outcome: ev.error ? 'error' : 'ok' }, ev.durationMs / 1000);
  }

  observeNetns(op: 'create' | 'remove', door: Door, durationMs: number): void {
    this.netnsDuration.observe({ door, op }, durationMs / 1000);
  }

  observeHotplug(op: 'attach' | 'detach', door: Door, outcome: string): void {
    this.hotplug.inc({ door, op, outcome });
  }

  /** After each load of a conf dir (NetworkManager): 1 per file that loaded, 0 per rejected one. */
  setConfigStatus(source: string, loaded: string[], rejected: string[]): void {
    for (const file of this.configFiles.get(source) ?? []) this.configValid.remove({ source, file });
    for (const file of loaded) this.configValid.set({ source, file }, 1);
    for (const file of rejected) this.configValid.set({ source, file }, 0);
    this.configFiles.set(source, [...loaded, ...rejected]);
  }

  /** Serves /metrics on host:port; resolves with the bound server. */
  async serve(address: string): Promise<Server> {
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i) || '127.0.0.1';
    const port = Number(address.slice(i + 1));
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('not found\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(`${err.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host.replace(/^\[|\]$/g, ''), () => resolve());
    });
    return server;
  }
}

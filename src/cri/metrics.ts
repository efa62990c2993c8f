import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { status } from '@grpc/grpc-js';
import type { PluginExecEvent } from '../cni/cni.js';
import type { SandboxPhase, SandboxRecord } from '../engine/store.js';

/**
 * podnetd's Prometheus metrics. Names follow the Prometheus conventions: a unit suffix once
 * (`_seconds`), `_total` only on counters, labels rather than name variants.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly rpcs: Counter<'method' | 'code'>;
  private readonly rpcDuration: Histogram<'method'>;
  private readonly cniDuration: Histogram<'network' | 'plugin' | 'verb' | 'outcome'>;
  readonly netnsDuration: Histogram<'op'>;
  readonly gcRemoved: Counter<'kind'>;
  private readonly configValid: Gauge<'source' | 'file'>;

  constructor(sandboxes: () => SandboxRecord[]) {
    collectDefaultMetrics({ register: this.registry, prefix: 'podnet_' });
    const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    this.rpcs = new Counter({ name: 'podnet_rpc_requests_total', help: 'CRI RPCs served, by method and gRPC status code.', labelNames: ['method', 'code'], registers: [this.registry] });
    this.rpcDuration = new Histogram({ name: 'podnet_rpc_duration_seconds', help: 'CRI RPC latency.', labelNames: ['method'], buckets, registers: [this.registry] });
    this.cniDuration = new Histogram({
      name: 'podnet_cni_plugin_duration_seconds',
      help: 'One CNI plugin execution, by network, plugin type, verb and outcome.',
      labelNames: ['network', 'plugin', 'verb', 'outcome'],
      buckets,
      registers: [this.registry],
    });
    this.netnsDuration = new Histogram({ name: 'podnet_netns_operation_duration_seconds', help: 'Network namespace create/remove latency.', labelNames: ['op'], buckets, registers: [this.registry] });
    this.gcRemoved = new Counter({ name: 'podnet_gc_removed_total', help: 'Leaked resources found and released by garbage collection.', labelNames: ['kind'], registers: [this.registry] });
    this.configValid = new Gauge({ name: 'podnet_network_config_valid', help: '1 if a network config file loaded, 0 if it was rejected.', labelNames: ['source', 'file'], registers: [this.registry] });
    new Gauge({
      name: 'podnet_sandboxes',
      help: 'Pod sandboxes by phase.',
      labelNames: ['phase'],
      registers: [this.registry],
      collect() {
        const counts: Record<SandboxPhase, number> = { creating: 0, ready: 0, stopping: 0, notready: 0 };
        for (const r of sandboxes()) counts[r.phase]++;
        for (const [phase, n] of Object.entries(counts)) this.set({ phase }, n);
      },
    });
  }

  observeRPC(method: string, durationMs: number, code: status): void {
    this.rpcs.inc({ method, code: status[code] ?? String(code) });
    this.rpcDuration.observe({ method }, durationMs / 1000);
  }

  observePlugin(ev: PluginExecEvent): void {
    this.cniDuration.observe({ network: ev.network, plugin: ev.plugin, verb: ev.verb, outcome: ev.error ? 'error' : 'ok' }, ev.durationMs / 1000);
  }

  setConfigStatus(source: string, loaded: string[], rejected: string[]): void {
    for (const file of loaded) this.configValid.set({ source, file }, 1);
    for (const file of rejected) this.configValid.set({ source, file }, 0);
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

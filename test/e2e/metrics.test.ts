import { afterAll, describe, expect, it } from 'vitest';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { waitFor } from '../helpers/env.js';
import { disposeAll, newRoot, podConfig, startDaemon, testNetwork } from './harness.js';

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

/** The value of one sample line, e.g. podnet_rpc_requests_total{method="RunPodSandbox",code="OK"}. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.indexOf('}'));
    const got = Object.fromEntries(inner.split(',').map((kv) => kv.split('=')).map(([k, v]) => [k, v.replace(/^"|"$/g, '')]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

describe('podnetd /metrics', () => {
  afterAll(async () => {
    expect(await disposeAll()).toEqual([]);
  });

  it('counts RPCs, plugin executions and sandboxes after a pod run', async () => {
    const root = await newRoot();
    const net = testNetwork(root);
    const port = randomInt(30000, 40000);
    const d = await startDaemon({ root, confFiles: { '10-net.conflist': net.text }, top: { metrics_address: `127.0.0.1:${port}` } });
    const before = await scrape(port);
    expect(sample(before, 'podnet_rpc_requests_total', { method: 'RunPodSandbox', code: 'OK' })).toBe(0);
    const id = await d.rpc.run(podConfig());
    const after = await scrape(port);
    expect(sample(after, 'podnet_rpc_requests_total', { method: 'RunPodSandbox', code: 'OK' })).toBe(1);
    expect(sample(after, 'podnet_cni_plugin_duration_seconds_count', { network: net.name, plugin: 'bridge', verb: 'ADD', outcome: 'ok' })).toBe(1);
    expect(sample(after, 'podnet_sandboxes', { phase: 'ready' })).toBe(1);
    // The door: the CRI's requests, its pods, their plugin runs and namespaces.
    expect(sample(after, 'podnet_rpc_requests_total', { door: 'cri', method: 'RunPodSandbox', code: 'OK' })).toBe(1);
    expect(sample(after, 'podnet_sandboxes', { door: 'cri', phase: 'ready' })).toBe(1);
    expect(sample(after, 'podnet_sandboxes', { door: 'cni', phase: 'ready' })).toBe(0);
    expect(sample(after, 'podnet_cni_plugin_duration_seconds_count', { door: 'cri', network: net.name, plugin: 'bridge', verb: 'ADD' })).toBe(1);
    expect(sample(after, 'podnet_netns_operation_duration_seconds_count', { door: 'cri', op: 'create' })).toBe(1);
    expect(sample(after, 'podnet_netns_operation_duration_seconds_count', { door: 'cri', op: 'remove' })).toBe(0);
    // The conf dir's file loaded; a broken one is reported as 0 once the reload saw it.
    expect(sample(after, 'podnet_network_config_valid', { source: 'default', file: join(d.confDir, '10-net.conflist') })).toBe(1);
    // No doubled suffixes anywhere (containerd's *_seconds_seconds, *_total_total).
    expect(after).not.toMatch(/_seconds_seconds|_total_total/);
    await d.rpc.stop(id);
    await d.rpc.remove(id);
    const end = await scrape(port);
    expect(sample(end, 'podnet_cni_plugin_duration_seconds_count', { network: net.name, plugin: 'bridge', verb: 'DEL', outcome: 'ok' })).toBe(1);
    expect(sample(end, 'podnet_sandboxes', { phase: 'ready' })).toBe(0);
    expect(sample(end, 'podnet_netns_operation_duration_seconds_count', { door: 'cri', op: 'remove' })).toBe(1);
    await d.writeConf('20-broken.conflist', '{"cniVersion": "1.0.0", "plugins": [');
    const broken = join(d.confDir, '20-broken.conflist');
    expect(await waitFor(async () => (await scrape(port)).includes(`file="${broken}"`), 10_000)).toBe(true);
    const reloaded = await scrape(port);
    expect(sample(reloaded, 'podnet_network_config_valid', { source: 'default', file: broken })).toBe(0);
    expect(sample(reloaded, 'podnet_network_config_valid', { source: 'default', file: join(d.confDir, '10-net.conflist') })).toBe(1);
  });
});

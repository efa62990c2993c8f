// `podnet explain` predicts what RunPodSandbox does, from the daemon's own config, conf dirs and
// attachments dir. The proof is a real podnetd running the same pod: a recording plugin
// (record-env, first in the cluster network's chain beside the real bridge, and first in a NAD's
// chain) writes down the env and stdin it got, and they must be what explain printed; a pod the
// daemon refuses must be refused by explain with the same gRPC code and message.
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { execa } from 'execa';
import { stringify as toYaml } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { FAULT_PLUGIN_DIR, PLUGIN_DIRS, randomHex } from '../helpers/env.js';
import { PodSandboxConfig, RunPodSandboxRequest, RunPodSandboxResponse } from '../../src/gen/runtime/v1/api.js';
import type { ExplainPlan, ExplainRefusal, ExplainReport } from '../../src/cmd/explain.js';
import { listDir, newRoot, podConfig, rpcError, startDaemon, testNetwork, expectNothingLeft, type Daemon } from './harness.js';

const PODNET = join(import.meta.dirname, '../../bin/podnet');
const PLACEHOLDER_ID = '0'.repeat(64);
const PLACEHOLDER_NETNS = /\/cni-00000000-0000-0000-0000-000000000000$/;

interface Setup {
  d: Daemon;
  root: string;
  recDir: string;
  nad: string;
  missingNad: string;
  fastNet: string;
  fastConfDir: string;
  clusterNet: string;
}

let setup: Promise<Setup> | undefined;

/** One daemon for the file: a cluster network [record-env, bridge], a NAD [record-env, bridge], a NAD whose plugin is missing, and a handler "fast" with a conf dir of its own. */
function daemon(): Promise<Setup> {
  setup ??= (async () => {
    const root = await newRoot();
    const bin = join(root, 'bin');
    const recDir = join(bin, 'record-env.rec');
    await mkdir(recDir, { recursive: true });
    await copyFile(join(FAULT_PLUGIN_DIR, 'record-env'), join(bin, 'record-env'));
    const cluster = testNetwork(root);
    const list = JSON.parse(cluster.text) as { plugins: Array<Record<string, unknown>> };
    list.plugins.unshift({ type: 'record-env', note: 'cluster', capabilities: { portMappings: true, bandwidth: true, dns: true, 'io.kubernetes.cri.pod-annotations': true } });
    const second = testNetwork(root);
    const nadList = JSON.parse(second.text) as { plugins: Array<Record<string, unknown>> };
    nadList.plugins.unshift({ type: 'record-env', note: 'nad', capabilities: { cgroupPath: true, portMappings: true, 'io.kubernetes.cri.pod-annotations': true } });
    const nad = `att-${randomHex(6)}`;
    const missingNad = `gone-${randomHex(6)}`;
    const attDir = join(root, 'attachments.d');
    await mkdir(attDir, { recursive: true });
    // As Multus's docs write a NAD: no name inside spec.config (metadata.name is used).
    const nadDoc = (name: string, config: unknown) => ({ apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name, namespace: 'e2e' }, spec: { config: JSON.stringify(config) } });
    await writeFile(join(attDir, `${nad}.json`), JSON.stringify(nadDoc(nad, { cniVersion: '1.0.0', plugins: nadList.plugins })));
    await writeFile(join(attDir, `${missingNad}.yaml`), toYaml(nadDoc(missingNad, { cniVersion: '1.0.0', type: 'no-such-plugin-podnet' })));
    const fastConfDir = join(root, 'fast.d');
    await mkdir(fastConfDir);
    const fastNet = `fast-${randomHex(6)}`;
    // Never run: only explained.
    await writeFile(join(fastConfDir, '10-fast.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: fastNet, plugins: [{ type: 'bridge', bridge: 'pn-unused0' }] }));
    const d = await startDaemon({
      root,
      confFiles: { '10-net.conflist': JSON.stringify(list) },
      cni: { bin_dirs: [bin, ...PLUGIN_DIRS] },
      runtimes: { fast: { cni_conf_dir: fastConfDir } },
    });
    return { d, root, recDir, nad, missingNad, fastNet, fastConfDir, clusterNet: cluster.name };
  })();
  return setup;
}

afterAll(async () => {
  if (setup) await expectNothingLeft();
});

/** A pod config as crictl reads it (snake_case), and the same pod as the message RunPodSandbox gets. */
function pod(annotations: Record<string, string>, extra: Record<string, unknown> = {}): { file: Record<string, unknown>; config: PodSandboxConfig } {
  const base = podConfig({ annotations });
  const md = base.metadata!;
  const file = {
    metadata: { name: md.name, namespace: md.namespace, uid: md.uid, attempt: md.attempt },
    log_directory: base.logDirectory,
    labels: base.labels,
    annotations,
    port_mappings: [{ protocol: 0, container_port: 8080, host_port: 18080, host_ip: '127.0.0.1' }],
    dns_config: { servers: ['10.96.0.10'], searches: ['e2e.svc.cluster.local'], options: ['ndots:5'] },
    linux: { cgroup_parent: `/kubepods/pod${md.uid}` },
    ...extra,
  };
  const config = PodSandboxConfig.fromPartial({
    ...base,
    portMappings: [{ protocol: 0, containerPort: 8080, hostPort: 18080, hostIp: '127.0.0.1' }],
    dnsConfig: { servers: ['10.96.0.10'], searches: ['e2e.svc.cluster.local'], options: ['ndots:5'] },
    linux: { cgroupParent: `/kubepods/pod${md.uid}` },
  });
  return { file, config };
}

async function explain(s: Setup, podFile: Record<string, unknown> | string, args: string[] = [], name = `pod-${randomHex(4)}.json`): Promise<{ exitCode: number; report: ExplainReport; stdout: string }> {
  const file = join(s.root, name);
  await writeFile(file, typeof podFile === 'string' ? podFile : JSON.stringify(podFile));
  const r = await execa(PODNET, ['explain', file, '--config', s.d.configFile, '--json', ...args], { reject: false });
  expect(r.stderr).toBe('');
  return { exitCode: r.exitCode ?? -1, report: JSON.parse(r.stdout) as ExplainReport, stdout: r.stdout };
}

function plan(r: ExplainReport): ExplainPlan {
  if (!r.ok) throw new Error(`explain refused the pod: ${r.code}: ${r.message}`);
  return r;
}

/** What record-env wrote for each ADD: env (CNI_* lines) and the exact stdin bytes, by CNI_IFNAME. */
async function recordedAdds(recDir: string): Promise<Map<string, { env: Record<string, string>; stdin: string }>> {
  const out = new Map<string, { env: Record<string, string>; stdin: string }>();
  for (const f of (await readdir(recDir)).filter((n) => n.endsWith('.env'))) {
    const env = Object.fromEntries(
      (await readFile(join(recDir, f), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    ) as Record<string, string>;
    if (env['CNI_COMMAND'] !== 'ADD') continue;
    out.set(env['CNI_IFNAME'], { env, stdin: await readFile(join(recDir, f.replace(/\.env$/, '.stdin')), 'utf8') });
  }
  return out;
}

describe('podnet explain', () => {
  it('predicts the exact env and stdin each plugin gets when the pod really runs (cluster network + NAD attachment)', async () => {
    const s = await daemon();
    const { file, config } = pod({ 'k8s.v1.cni.cncf.io/networks': `${s.nad}@net1`, 'kubernetes.io/ingress-bandwidth': '10M' });
    const { exitCode, report } = await explain(s, file);
    expect(exitCode).toBe(0);
    const p = plan(report);
    expect(p.sandboxId).toBe(PLACEHOLDER_ID);
    expect(p.netns).toBe(join(s.d.netnsDir, 'cni-00000000-0000-0000-0000-000000000000'));
    expect(p.runtimeHandler).toMatchObject({ requested: '', name: 'runc', confDir: s.d.confDir });
    expect(p.networks.map((n) => [n.ifName, n.network, n.kind, n.ref])).toEqual([
      ['lo', 'cni-loopback', 'loopback', undefined],
      ['eth0', s.clusterNet, 'cluster', undefined],
      ['net1', s.nad, 'attachment', `e2e/${s.nad}`],
    ]);
    const eth0 = p.networks[1];
    expect(eth0.plugins.map((x) => [x.type, x.prevResultFrom])).toEqual([['record-env', null], ['bridge', 'record-env']]);
    expect(eth0.plugins[0].stdin['runtimeConfig']).toMatchObject({ portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp', hostIP: '127.0.0.1' }], dns: { servers: ['10.96.0.10'] }, bandwidth: { ingressRate: 10_000_000 } });
    expect(p.networks[2].capabilityArgs).not.toHaveProperty('portMappings');

    // Nothing was created: no namespace, no record, no cache entry, no plugin run.
    expect(await listDir(s.d.netnsDir)).toEqual([]);
    expect((await listDir(join(s.d.stateDir, 'sandboxes'))).filter((f) => f.startsWith(PLACEHOLDER_ID))).toEqual([]);
    expect(await listDir(join(s.d.cacheDir, 'results'))).toEqual([]);
    expect(await listDir(s.recDir)).toEqual([]);

    const id = await s.d.rpc.run(config);
    const netns = await s.d.rpc.netnsPath(id);
    const real = (v: string): string => v.replaceAll(PLACEHOLDER_ID, id).replace(PLACEHOLDER_NETNS, netns.slice(netns.lastIndexOf('/')));
    const recorded = await recordedAdds(s.recDir);
    expect([...recorded.keys()].sort()).toEqual(['eth0', 'net1']);
    for (const ifName of ['eth0', 'net1']) {
      const predicted = p.networks.find((n) => n.ifName === ifName)!.plugins[0];
      const got = recorded.get(ifName)!;
      expect(got.env, ifName).toEqual(Object.fromEntries(Object.entries(predicted.env).map(([k, v]) => [k, real(v)])));
      expect(got.env['CNI_NETNS']).toBe(netns);
      // Byte for byte: explain's stdin is the one the ADD loop builds.
      expect(got.stdin, ifName).toBe(JSON.stringify(predicted.stdin));
    }
    await s.d.rpc.stop(id);
    await s.d.rpc.remove(id);
  });

  it('refuses a bad pod with the code and message RunPodSandbox returns over the socket', async () => {
    const s = await daemon();
    const cases: Array<{ what: string; file: Record<string, unknown>; config: PodSandboxConfig; handler?: string }> = [];
    {
      const { file, config } = pod({});
      const md = file['metadata'] as Record<string, unknown>;
      cases.push({ what: 'no uid', file: { ...file, metadata: { ...md, uid: '' } }, config: PodSandboxConfig.fromPartial({ ...config, metadata: { ...config.metadata!, uid: '' } }) });
    }
    {
      const { file, config } = pod({});
      cases.push({ what: 'host port out of range', file: { ...file, port_mappings: [{ protocol: 0, container_port: 80, host_port: 70000 }] }, config: PodSandboxConfig.fromPartial({ ...config, portMappings: [{ protocol: 0, containerPort: 80, hostPort: 70000 }] }) });
    }
    cases.push({ what: 'an undeclared handler', ...pod({}), handler: 'no-such-handler' });
    cases.push({ what: 'a NAD that does not exist', ...pod({ 'k8s.v1.cni.cncf.io/networks': 'not-there' }) });
    cases.push({ what: 'a bad bandwidth annotation', ...pod({ 'kubernetes.io/egress-bandwidth': 'lots' }) });
    for (const c of cases) {
      const { exitCode, report } = await explain(s, c.file, c.handler ? ['--runtime', c.handler] : []);
      const err = await rpcError(s.d.rpc.run(c.config, c.handler ?? ''));
      expect(exitCode, c.what).toBe(1);
      expect(report.ok, c.what).toBe(false);
      const r = report as ExplainRefusal;
      expect([r.grpcCode, r.code, r.message], c.what).toEqual([err.code, status[err.code], err.details]);
    }
    expect(cases.map((c) => c.what)).toHaveLength(5);
    // A label key the decoded message cannot hold: refused before decoding, by both.
    const { file, config } = pod({});
    const lostLabels = JSON.parse('{"__proto__": "x"}') as Record<string, string>;
    const { report } = await explain(s, { ...file, labels: lostLabels });
    const bytes = Buffer.from(RunPodSandboxRequest.encode({ config: { ...config, labels: lostLabels }, runtimeHandler: '' }).finish());
    const err = await rpcError(s.d.rpc.raw('/runtime.v1.RuntimeService/RunPodSandbox', bytes, (b) => RunPodSandboxResponse.decode(b)));
    expect(report).toEqual({ ok: false, code: 'INVALID_ARGUMENT', grpcCode: err.code, message: err.details });
    expect(err.details).toContain('config.labels key "__proto__" is not allowed');
  });

  it('--runtime picks the handler\'s conf dir', async () => {
    const s = await daemon();
    const { file } = pod({});
    const p = plan((await explain(s, file, ['--runtime', 'fast'])).report);
    expect(p.runtimeHandler).toMatchObject({ requested: 'fast', name: 'fast', confDir: s.fastConfDir });
    expect(p.networks.map((n) => [n.ifName, n.network])).toEqual([['lo', 'cni-loopback'], ['eth0', s.fastNet]]);
    const dflt = plan((await explain(s, file)).report);
    expect(dflt.networks[1].network).toBe(s.clusterNet);
  });

  it('--check-plugins runs VERSION of each plugin and reports a missing one; RunPodSandbox fails on it too', async () => {
    const s = await daemon();
    const { file, config } = pod({ 'k8s.v1.cni.cncf.io/networks': s.missingNad });
    const { exitCode, report } = await explain(s, file, ['--check-plugins']);
    expect(exitCode).toBe(1);
    const p = plan(report);
    expect(p.networks[1].plugins.map((x) => [x.type, x.supportedVersions?.includes('1.0.0')])).toEqual([['record-env', true], ['bridge', true]]);
    const missing = p.networks.find((n) => n.ifName === 'net1')!.plugins[0];
    expect(missing.path).toBeNull();
    expect(missing.problems).toEqual([`failed to find plugin "no-such-plugin-podnet" in path [${join(s.root, 'bin')} ${PLUGIN_DIRS.join(' ')}]`]);
    expect(p.problems).toHaveLength(1);
    const err = await rpcError(s.d.rpc.run(config));
    expect(err.details).toContain('failed to find plugin "no-such-plugin-podnet"');
  });

  it('reads YAML pod files as JSON ones, and prints a readable form without --json', async () => {
    const s = await daemon();
    const { file } = pod({ 'k8s.v1.cni.cncf.io/networks': `${s.nad}@net1` });
    const fromJson = (await explain(s, file)).report;
    const fromYaml = (await explain(s, toYaml(file), [], 'pod.yaml')).report;
    expect(fromYaml).toEqual(fromJson);
    const podFile = join(s.root, 'pod-text.json');
    await writeFile(podFile, JSON.stringify(file));
    const text = await execa(PODNET, ['explain', podFile, '--config', s.d.configFile]);
    expect(text.stdout).toContain(`eth0: network "${s.clusterNet}", cluster`);
    expect(text.stdout).toContain(`net1: network "${s.nad}" (e2e/${s.nad}), attachment`);
    expect(text.stdout).toContain('CNI_IFNAME=net1');
    expect(text.stdout).toContain('(plus "prevResult": the ADD result of record-env)');
    // A host-network pod (crictl's own fixture): recorded only, no network, no plugin.
    const host = plan((await explain(s, await readFile(join(import.meta.dirname, '../fixtures/crictl/pod-configs/hostnet.json'), 'utf8'))).report);
    expect([host.hostNetwork, host.netns, host.networks]).toEqual([true, '', []]);
  });
});

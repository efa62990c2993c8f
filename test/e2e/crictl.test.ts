// The whole CRI surface podnetd serves, driven by the real crictl (cri-tools v1.32.0) against the
// built daemon on a real socket, with real bridge/host-local/portmap plugins. crictl checks the
// image service (ImageFsInfo) as well as Version when it connects, as the kubelet does.
import { createSocket } from 'node:dgram';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findCriTool, missingToolMessage } from '../helpers/cri-tools.js';
import { freeHostPort, natRulesMatching, randomHex, removeEmptyPortmapChains, waitFor, withHostLock } from '../helpers/env.js';
import { type Daemon, disposeAll, expectNothingLeft, inSubnet, newRoot, onCleanup, startDaemon, testNetwork, type TestNetwork } from './harness.js';

const CRICTL = findCriTool('crictl');
if (!CRICTL) console.warn(missingToolMessage('crictl'));

type Json = Record<string, unknown>;

let ipForwardBefore = '';
let portmapChainsBefore = true;

beforeAll(async () => {
  ipForwardBefore = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
  portmapChainsBefore = (await natRulesMatching('-N CNI-HOSTPORT-DNAT')).length > 0;
});

afterAll(async () => {
  await disposeAll();
  if (ipForwardBefore) await writeFile('/proc/sys/net/ipv4/ip_forward', ipForwardBefore);
  if (!portmapChainsBefore) await withHostLock('iptables', removeEmptyPortmapChains);
});

/** crictl pointed at one daemon through its own crictl.yaml (never the host's /etc/crictl.yaml). */
class Crictl {
  constructor(private readonly config: string) {}

  static async for(d: Daemon): Promise<Crictl> {
    const config = join(d.root, 'crictl.yaml');
    await writeFile(config, `runtime-endpoint: unix://${d.socket}\nimage-endpoint: unix://${d.socket}\ntimeout: 60\n`);
    return new Crictl(config);
  }

  /** Runs crictl; throws with its stderr unless it exits 0. */
  async run(...args: string[]): Promise<string> {
    const r = await execa(CRICTL!, ['--config', this.config, ...args], { reject: false });
    if (r.exitCode !== 0) throw new Error(`crictl ${args.join(' ')}: exit ${r.exitCode}: ${String(r.stderr).trim()}`);
    return String(r.stdout);
  }

  async json(...args: string[]): Promise<Json> {
    return JSON.parse(await this.run(...args)) as Json;
  }

  /** `-q` output: one id per line. */
  async ids(...args: string[]): Promise<string[]> {
    return (await this.run(...args, '-q')).split('\n').filter(Boolean).sort();
  }

  /** `crictl events` in the background; every event it prints is parsed into `events`. */
  events(): { proc: ResultPromise; events: Json[] } {
    const proc = execa(CRICTL!, ['--config', this.config, 'events'], { reject: false, buffer: false, stdin: 'ignore' });
    onCleanup(async () => {
      proc.kill('SIGTERM');
      await proc;
    }, 'crictl events');
    const events: Json[] = [];
    let pending = '';
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (chunk: string) => {
      pending += chunk;
      // protojson with indentation: each event ends with a closing brace alone on its line.
      let end: number;
      while ((end = pending.indexOf('\n}')) >= 0) {
        events.push(JSON.parse(pending.slice(0, end + 2)) as Json);
        pending = pending.slice(end + 2).replace(/^\s+/, '');
      }
    });
    return { proc, events };
  }
}

interface PodFile {
  path: string;
  name: string;
}

/** A pod config in crictl's JSON format (protobuf field names), with a unique name and uid. */
async function podFile(root: string, kind: string, extra: Json = {}): Promise<PodFile> {
  const suffix = randomHex(8);
  const name = `${kind}-${suffix}`;
  const cfg = {
    metadata: { name, namespace: 'crictl-e2e', uid: `uid-${suffix}`, attempt: 0 },
    log_directory: join(root, 'logs', name),
    labels: { app: 'crictl-e2e', kind },
    annotations: { 'podnet.test/owner': 'crictl.test.ts' },
    linux: {},
    ...extra,
  };
  const path = join(root, `${name}.json`);
  await writeFile(path, JSON.stringify(cfg));
  return { path, name };
}

function get(obj: unknown, ...path: string[]): unknown {
  let v = obj;
  for (const k of path) v = typeof v === 'object' && v !== null ? (v as Json)[k] : undefined;
  return v;
}

/** Sends UDP datagrams from the host to the pod, so its eth0 receives bytes. */
async function sendTraffic(ip: string, count: number): Promise<void> {
  const sock = createSocket('udp4');
  try {
    for (let i = 0; i < count; i++) await new Promise<void>((resolve, reject) => sock.send(Buffer.alloc(512, i), 9, ip, (err) => (err ? reject(err) : resolve())));
  } finally {
    sock.close();
  }
}

function rxBytes(stats: Json, id: string): bigint {
  const list = (stats['stats'] ?? []) as Json[];
  const s = list.find((x) => get(x, 'attributes', 'id') === id);
  const v = get(s, 'linux', 'network', 'defaultInterface', 'rxBytes', 'value');
  return BigInt(typeof v === 'string' || typeof v === 'number' ? v : -1);
}

describe('crictl against podnetd', () => {
  it('version, info, runp (basic, ports+DNS, host network, handler), inspectp, pods filters, ps, images, imagefsinfo, statsp, events, stopp, rmp', async (ctx) => {
    if (!CRICTL) return ctx.skip(missingToolMessage('crictl'));
    const root = await newRoot();
    const net: TestNetwork = testNetwork(root, { portmap: true });
    const fast = testNetwork(root);
    const fastDir = join(root, 'fast.d');
    await mkdir(fastDir, { recursive: true });
    await writeFile(join(fastDir, '10-fast.conflist'), fast.text);
    const d = await startDaemon({ root, confFiles: { '10-net.conflist': net.text }, runtimes: { 'fast-net': { cni_conf_dir: fastDir } } });
    const crictl = await Crictl.for(d);

    // version / info
    const version = await crictl.run('version');
    expect(version).toMatch(/RuntimeName:\s+podnet/);
    expect(version).toMatch(/RuntimeApiVersion:\s+v1/);
    const info = await crictl.json('info');
    const conditions = get(info, 'status', 'conditions') as Array<{ type: string; status: boolean }>;
    expect(conditions.filter((c) => c.status).map((c) => c.type).sort()).toEqual(['NetworkReady', 'RuntimeReady']);

    // events: one stream open before anything runs
    const { events } = crictl.events();
    expect(await waitFor(() => d.logs.some((l) => l['rpc'] === 'GetContainerEvents' && l['outcome'] === 'OPEN'), 10_000)).toBe(true);

    // runp: basic, port mapping + DNS, host network, runtime handler
    const basic = await podFile(root, 'basic');
    const hostPort = await freeHostPort();
    const dns = { servers: ['10.96.0.10'], searches: ['crictl-e2e.svc.cluster.local'], options: ['ndots:5'] };
    const ported = await podFile(root, 'ported', { hostname: 'ported', dns_config: dns, port_mappings: [{ protocol: 0, container_port: 80, host_port: hostPort, host_ip: '127.0.0.1' }] });
    const hostnet = await podFile(root, 'hostnet', { linux: { security_context: { namespace_options: { network: 2 } } } });
    const handled = await podFile(root, 'handled');
    const basicID = (await crictl.run('runp', basic.path)).trim();
    const portedID = (await withHostLock('iptables', () => crictl.run('runp', ported.path))).trim();
    const hostnetID = (await crictl.run('runp', hostnet.path)).trim();
    const handledID = (await crictl.run('runp', '--runtime', 'fast-net', handled.path)).trim();
    for (const id of [basicID, portedID, hostnetID, handledID]) expect(id).toMatch(/^[0-9a-f]{64}$/);

    // inspectp
    const ib = await crictl.json('inspectp', basicID);
    expect(get(ib, 'status', 'state')).toBe('SANDBOX_READY');
    const basicIP = String(get(ib, 'status', 'network', 'ip'));
    expect(inSubnet(basicIP, net.subnet), basicIP).toBe(true);
    const ip = await crictl.json('inspectp', portedID);
    expect(inSubnet(String(get(ip, 'status', 'network', 'ip')), net.subnet)).toBe(true);
    expect(get(ip, 'info', 'config', 'dnsConfig')).toEqual(dns);
    expect((await natRulesMatching(`--dport ${hostPort}`)).length).toBeGreaterThan(0);
    const ih = await crictl.json('inspectp', hostnetID);
    expect(get(ih, 'status', 'network', 'ip')).toBe('');
    expect(get(ih, 'status', 'linux', 'namespaces', 'options', 'network')).toBe('NODE');
    const ihd = await crictl.json('inspectp', handledID);
    expect(get(ihd, 'status', 'runtimeHandler')).toBe('fast-net');
    expect(inSubnet(String(get(ihd, 'status', 'network', 'ip')), fast.subnet)).toBe(true);

    // pods and its filters
    const all = [basicID, portedID, hostnetID, handledID].sort();
    expect(await crictl.ids('pods')).toEqual(all);
    expect(await crictl.ids('pods', '--label', 'kind=basic')).toEqual([basicID]);
    expect(await crictl.ids('pods', '--state', 'ready')).toEqual(all);
    expect(await crictl.ids('pods', '--name', basic.name)).toEqual([basicID]);
    expect(await crictl.ids('pods', '--namespace', 'crictl-e2e')).toEqual(all);
    expect(await crictl.ids('pods', '--namespace', 'no-such-namespace')).toEqual([]);
    expect(await crictl.ids('pods', '--id', basicID.slice(0, 12))).toEqual([basicID]);
    const listed = (await crictl.json('pods', '-o', 'json'))['items'] as Json[];
    expect(listed.find((p) => p['id'] === handledID)?.['runtimeHandler']).toBe('fast-net');

    // no containers, no images; the image filesystem is the state dir's
    expect(await crictl.json('ps', '-a', '-o', 'json')).toEqual({ containers: [] });
    expect(await crictl.ids('ps', '-a')).toEqual([]);
    expect(await crictl.json('images', '-o', 'json')).toEqual({ images: [] });
    const fsinfo = await crictl.json('imagefsinfo');
    for (const key of ['imageFilesystems', 'containerFilesystems']) {
      const [fs] = get(fsinfo, 'status', key) as Json[];
      expect(BigInt(String(get(fs, 'usedBytes', 'value'))), key).toBeGreaterThan(0n);
      expect(BigInt(String(get(fs, 'inodesUsed', 'value'))), key).toBeGreaterThan(0n);
      expect(String(get(fs, 'fsId', 'mountpoint')), key).toMatch(/^\//);
      expect(BigInt(String(fs?.['timestamp'])), key).toBeGreaterThan(0n);
    }

    // statsp: the pod's own counters, read inside its namespace; bytes move after traffic
    const before = await crictl.json('statsp', '-o', 'json');
    const ready = ((before['stats'] ?? []) as Json[]).map((s) => get(s, 'attributes', 'id')).sort();
    expect(ready).toEqual(all);
    const basicStats = ((before['stats'] ?? []) as Json[]).find((s) => get(s, 'attributes', 'id') === basicID)!;
    expect(get(basicStats, 'attributes', 'metadata', 'name')).toBe(basic.name);
    expect(get(basicStats, 'attributes', 'labels', 'kind')).toBe('basic');
    expect(get(basicStats, 'linux', 'network', 'defaultInterface', 'name')).toBe('eth0');
    expect((get(basicStats, 'linux', 'network', 'interfaces') as Json[]).map((i) => i['name'])).toEqual(['eth0']);
    const hostnetStats = ((before['stats'] ?? []) as Json[]).find((s) => get(s, 'attributes', 'id') === hostnetID)!;
    expect(get(hostnetStats, 'linux', 'network')).toBeUndefined();
    await sendTraffic(basicIP, 20);
    const after = await crictl.json('statsp', '-o', 'json', '--id', basicID);
    expect(((after['stats'] ?? []) as Json[]).map((s) => get(s, 'attributes', 'id'))).toEqual([basicID]);
    expect(rxBytes(after, basicID)).toBeGreaterThanOrEqual(rxBytes(before, basicID) + 20n * 512n);
    const byLabel = await crictl.json('statsp', '-o', 'json', '--label', 'kind=handled');
    expect(((byLabel['stats'] ?? []) as Json[]).map((s) => get(s, 'attributes', 'id'))).toEqual([handledID]);

    // stopp / rmp: everything goes, and the events stream saw the basic pod's whole life
    await crictl.run('stopp', basicID, hostnetID, handledID);
    await withHostLock('iptables', () => crictl.run('stopp', portedID));
    expect(await crictl.ids('pods', '--state', 'notready')).toEqual(all);
    expect(await crictl.json('statsp', '-o', 'json')).toEqual({ stats: [] });
    await crictl.run('rmp', basicID, portedID, hostnetID, handledID);
    expect(await crictl.ids('pods')).toEqual([]);
    expect(await natRulesMatching(`--dport ${hostPort}`)).toEqual([]);
    expect(await d.netnsFiles()).toEqual([]);
    expect(await d.cacheEntries()).toEqual([]);

    const lifecycle = (id: string): unknown[] => events.filter((e) => e['containerId'] === id).map((e) => e['containerEventType']);
    expect(await waitFor(() => lifecycle(basicID).length >= 4, 10_000)).toBe(true);
    expect(lifecycle(basicID)).toEqual(['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT']);
    const states = events.filter((e) => e['containerId'] === basicID).map((e) => get(e, 'podSandboxStatus', 'state') ?? 'SANDBOX_READY');
    expect(states).toEqual(['SANDBOX_NOTREADY', 'SANDBOX_READY', 'SANDBOX_NOTREADY', 'SANDBOX_NOTREADY']);
    for (const e of events.filter((x) => x['containerId'] === basicID)) expect(get(e, 'podSandboxStatus', 'metadata', 'name')).toBe(basic.name);
    expect(lifecycle(hostnetID)).toEqual(['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT']);
  });
});

describe('leaks', () => {
  it('left no namespace mounts, bridges, processes or iptables rules behind', async (ctx) => {
    if (!CRICTL) return ctx.skip(missingToolMessage('crictl'));
    await expectNothingLeft();
  });
});

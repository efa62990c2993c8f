// podnetd end to end: the built daemon (dist/) on a real unix socket, the generated grpc-js client,
// real CNI plugins (bridge, host-local, portmap) and real network namespaces. Each test makes its
// own temp root, bridges and subnets, and cleans them up in afterEach even when it fails; the last
// test checks that nothing (mounts, bridges, processes, iptables rules) was left behind.
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { randomInt } from 'node:crypto';
import { execa } from 'execa';
import { status as grpcStatus } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CgroupDriver,
  CreateContainerRequest,
  NamespaceMode,
  PodSandboxConfig,
  PodSandboxState,
  Protocol,
  RuntimeServiceService,
  type StatusResponse,
} from '../../src/gen/runtime/v1/api.js';
import { freeHostPort, ipAddrsIn, natRulesMatching, pidAlive, removeEmptyPortmapChains, waitFor, withHostLock, pathExists } from '../helpers/env.js';
import {
  type Daemon,
  DaemonStartError,
  disposeAll,
  expectNothingLeft,
  inSubnet,
  newRoot,
  nsfsMountsUnder,
  onCleanup,
  podConfig,
  REPO_ROOT,
  rpcError,
  startDaemon,
  testNetwork,
  uniqueBridge,
  uniqueSubnet,
} from './harness.js';

const HEX64 = /^[0-9a-f]{64}$/;
const UNKNOWN_ID = 'ab'.repeat(32);
const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'crictl');

let ipForwardBefore = '';
let portmapChainsBefore = true;
/** Listener processes started inside pod namespaces (checked dead at the end). */
const listenerPids = new Set<number>();

beforeAll(async () => {
  // bridge with isGateway turns on IPv4 forwarding on the host; it is put back as it was.
  ipForwardBefore = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
  portmapChainsBefore = (await natRulesMatching('-N CNI-HOSTPORT-DNAT')).length > 0;
});

afterEach(async () => {
  expect(await disposeAll()).toEqual([]);
});

afterAll(async () => {
  await disposeAll();
  if (ipForwardBefore) await writeFile('/proc/sys/net/ipv4/ip_forward', ipForwardBefore);
  if (!portmapChainsBefore) await withHostLock('iptables', removeEmptyPortmapChains);
});

const exists = pathExists;

/** A daemon whose default conf dir holds one fresh bridge network. */
async function daemonWithNetwork(opts: { portmap?: boolean } = {}): Promise<{ d: Daemon; net: ReturnType<typeof testNetwork> }> {
  const root = await newRoot();
  const net = testNetwork(root, opts);
  const d = await startDaemon({ root, confFiles: { '10-net.conflist': net.text } });
  return { d, net };
}

function condition(res: StatusResponse, type: string): { status: boolean; reason: string; message: string } {
  const c = res.status?.conditions.find((x) => x.type === type);
  if (!c) throw new Error(`no ${type} condition in ${JSON.stringify(res.status)}`);
  return c;
}

async function podIP(d: Daemon, id: string): Promise<string> {
  return (await d.rpc.status(id)).status?.network?.ip ?? '';
}

/** Writes a file atomically (temp name outside the watched dir, then rename) so a reload never sees half of it. */
async function writeAtomic(file: string, text: string, tmpDir: string): Promise<void> {
  const tmp = join(tmpDir, `.tmp-${randomInt(1e9)}`);
  await writeFile(tmp, text);
  await rename(tmp, file);
}

describe('Version', () => {
  it('answers all four fields, runtime_api_version v1', async () => {
    const d = await startDaemon();
    const v = await d.rpc.version();
    expect(v.version).not.toBe('');
    expect(v.runtimeName).toBe('podnet');
    expect(v.runtimeVersion).not.toBe('');
    expect(v.runtimeApiVersion).toBe('v1');
  });
});

describe('RunPodSandbox, PodSandboxStatus, ListPodSandbox', () => {
  it('runs a pod with an IP of the network, visible in its netns, and lists/filters it', async () => {
    const { d, net } = await daemonWithNetwork();
    const cfg = podConfig({
      hostname: 'web',
      labels: { app: 'web', tier: 'front' },
      annotations: { 'example.com/owner': 'team-a', 'example.com/empty': '' },
      metadata: { attempt: 3 },
    });
    const id = await d.rpc.run(cfg);
    expect(id).toMatch(HEX64);

    const res = await d.rpc.status(id, true);
    const st = res.status!;
    expect(st.id).toBe(id);
    expect(st.state).toBe(PodSandboxState.SANDBOX_READY);
    expect(st.createdAt).toBeGreaterThan(0n);
    // Within a minute of now, in nanoseconds.
    expect(Number(st.createdAt / 1_000_000n)).toBeGreaterThan(Date.now() - 60_000);
    expect(st.metadata).toEqual(cfg.metadata);
    expect(st.labels).toEqual(cfg.labels);
    expect(st.annotations).toEqual(cfg.annotations);
    expect(st.linux?.namespaces?.options?.network).toBe(NamespaceMode.POD);
    const ip = st.network!.ip;
    expect(inSubnet(ip, net.subnet), `${ip} in ${net.subnet.subnet}`).toBe(true);

    const info = JSON.parse(res.info['info']) as { netNamespacePath: string; hostNetwork: boolean };
    expect(info.hostNetwork).toBe(false);
    expect(dirname(info.netNamespacePath)).toBe(d.netnsDir);
    const r = await execa('nsenter', [`--net=${info.netNamespacePath}`, 'ip', '-j', 'addr', 'show', 'dev', 'eth0']);
    const addrs = (JSON.parse(String(r.stdout)) as Array<{ addr_info: Array<{ family: string; local: string; prefixlen: number }> }>)
      .flatMap((l) => l.addr_info)
      .filter((a) => a.family === 'inet');
    expect(addrs).toEqual([expect.objectContaining({ local: ip, prefixlen: 24 })]);

    // ListPodSandbox: no filter, id prefix, state READY, label selector.
    expect((await d.rpc.list()).map((p) => p.id)).toEqual([id]);
    const [item] = await d.rpc.list({ id: id.slice(0, 10) });
    expect(item).toMatchObject({ id, state: PodSandboxState.SANDBOX_READY, labels: cfg.labels, annotations: cfg.annotations, metadata: cfg.metadata });
    expect(item.createdAt).toBe(st.createdAt);
    expect((await d.rpc.list({ state: { state: PodSandboxState.SANDBOX_READY } })).map((p) => p.id)).toEqual([id]);
    expect((await d.rpc.list({ state: { state: PodSandboxState.SANDBOX_NOTREADY } })).map((p) => p.id)).toEqual([]);
    expect((await d.rpc.list({ labelSelector: { app: 'web', tier: 'front' } })).map((p) => p.id)).toEqual([id]);
    expect(await d.rpc.list({ labelSelector: { app: 'db' } })).toEqual([]);
    expect(await d.rpc.list({ labelSelector: { nolabel: 'x' } })).toEqual([]);
    expect(await d.rpc.list({ id: UNKNOWN_ID.slice(0, 8) })).toEqual([]);

    // An id prefix works for Status, Stop and Remove.
    const prefix = id.slice(0, 12);
    expect((await d.rpc.status(prefix)).status?.id).toBe(id);
    await d.rpc.stop(prefix);
    expect((await d.rpc.status(prefix)).status?.state).toBe(PodSandboxState.SANDBOX_NOTREADY);
    expect((await d.rpc.list({ state: { state: PodSandboxState.SANDBOX_READY } })).map((p) => p.id)).toEqual([]);
    await d.rpc.remove(prefix);
    expect((await rpcError(d.rpc.status(id))).code).toBe(grpcStatus.NOT_FOUND);
    expect(await d.rpc.list()).toEqual([]);
  });

  it('keeps a ready pod across a daemon restart (SIGTERM, start again)', async () => {
    const { d } = await daemonWithNetwork();
    const id = await d.rpc.run(podConfig());
    const ip = await podIP(d, id);
    const ns = await d.rpc.netnsPath(id);
    await d.restart();
    expect((await d.rpc.status(id)).status).toMatchObject({ state: PodSandboxState.SANDBOX_READY, network: { ip } });
    expect((await ipAddrsIn(ns, 'eth0')).filter((a) => a.family === 'inet').map((a) => a.local)).toEqual([ip]);
    await d.rpc.stop(id);
    await d.rpc.remove(id);
    expect(await d.netnsFiles()).toEqual([]);
  });

  it('upgrades over a state dir of the previous format: a version-1 record is served, stopped and removed', async () => {
    const { d, net } = await daemonWithNetwork();
    const cfg = podConfig({ labels: { app: 'old' }, annotations: { note: 'v1' } });
    const id = await d.rpc.run(cfg);
    const ip = await podIP(d, id);
    const before = (await d.rpc.status(id)).status!;
    await d.stop();
    // The record as podnet wrote it before the engine: the captured fixture's fields, in its order.
    const fixture = JSON.parse(await readFile(new URL('../fixtures/records/v1-ready.json', import.meta.url), 'utf8')) as Record<string, unknown>;
    const file = join(d.stateDir, 'sandboxes', `${id}.json`);
    const now = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown> & { cri: { config: unknown; createdAt: string } };
    const v1: Record<string, unknown> = {};
    for (const key of Object.keys(fixture)) v1[key] = key === 'version' ? 1 : key === 'config' ? now.cri.config : key === 'createdAt' ? now.cri.createdAt : now[key];
    expect(Object.keys(v1).sort()).toEqual(Object.keys(fixture).sort());
    await writeFile(file, JSON.stringify(v1));
    await d.spawn();
    const after = (await d.rpc.status(id)).status!;
    expect(after).toEqual(before);
    expect((await d.rpc.list()).map((p) => p.id)).toContain(id);
    await d.rpc.stop(id);
    expect(await pathExists(join(net.dataDir, net.name, ip))).toBe(false);
    await d.rpc.remove(id);
    expect(await d.netnsFiles()).toEqual([]);
    expect(await d.cacheEntries()).toEqual([]);
  });
});

describe('port mappings', () => {
  it('forwards 127.0.0.1:<hostPort> to a listener on :8080 in the pod (portmap)', async () => {
    const { d, net } = await daemonWithNetwork({ portmap: true });
    const hostPort = await freeHostPort();
    const cfg = podConfig({ portMappings: [{ containerPort: 8080, hostPort, hostIp: '127.0.0.1', protocol: Protocol.TCP }] });
    // portmap edits host-global iptables chains; other suites doing the same take this lock too.
    const id = await withHostLock('iptables', () => d.rpc.run(cfg));
    const ip = await podIP(d, id);
    expect(inSubnet(ip, net.subnet)).toBe(true);
    const dnat = await natRulesMatching(`${ip}:8080`);
    expect(dnat.join('\n')).toContain(`--dport ${hostPort}`);

    // A listener inside the pod's namespace (nsenter execs node, so the pid is node's).
    const ns = await d.rpc.netnsPath(id);
    const script = "require('net').createServer((s) => s.end('hello-podnet')).listen(8080, '0.0.0.0', () => console.log('listening'))";
    const listener = execa('nsenter', [`--net=${ns}`, process.execPath, '-e', script], { reject: false, buffer: false, stdin: 'ignore' });
    const pid = listener.pid!;
    listenerPids.add(pid);
    onCleanup(async () => {
      listener.kill('SIGKILL');
      await listener;
    }, `kill listener ${pid}`);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('listener did not start')), 10_000);
      listener.stdout?.on('data', (b: Buffer) => {
        if (b.toString().includes('listening')) {
          clearTimeout(t);
          resolve();
        }
      });
      void listener.then((r) => reject(new Error(`listener exited: ${String(r.stderr ?? '')}`)));
    });

    // 127.0.0.1 works: portmap 1.1.1 hooks CNI-HOSTPORT-DNAT into OUTPUT for local destinations,
    // marks the 127/8-sourced connection for masquerade (snat, the default), and sets
    // net.ipv4.conf.<bridge>.route_localnet=1 itself so the DNATed packet may leave via the bridge.
    expect((await readFile(`/proc/sys/net/ipv4/conf/${net.bridge}/route_localnet`, 'utf8')).trim()).toBe('1');
    const reply = await new Promise<string>((resolve, reject) => {
      let data = '';
      const sock = connect({ host: '127.0.0.1', port: hostPort });
      sock.setTimeout(5000, () => sock.destroy(new Error(`timed out talking to 127.0.0.1:${hostPort}`)));
      sock.on('data', (b) => (data += b.toString()));
      sock.on('end', () => resolve(data));
      sock.on('error', reject);
    });
    expect(reply).toBe('hello-podnet');

    await withHostLock('iptables', () => d.rpc.stop(id));
    expect(await natRulesMatching(`${ip}:`)).toEqual([]);
    await d.rpc.remove(id);
  });
});

describe('runtime handlers', () => {
  it('selects networks by handler; undeclared handlers are refused with the declared list', async () => {
    const root = await newRoot();
    const netA = testNetwork(root);
    const netB = testNetwork(root);
    const fastDir = join(root, 'fast.d');
    const d = await startDaemon({
      root,
      confFiles: { '10-a.conflist': netA.text },
      runtimes: { 'fast-net': { cni_conf_dir: fastDir }, plain: {} },
    });
    // The fast-net dir does not exist when the daemon starts: it is picked up when it appears.
    await mkdir(fastDir);
    await writeAtomic(join(fastDir, '10-b.conflist'), netB.text, root);
    expect(
      await waitFor(async () => {
        const s = await d.rpc.runtimeStatus(true);
        return s.info['lastCNILoadStatus.fast-net'] === 'OK';
      }, 10_000, 200),
    ).toBe(true);

    const cases: Array<[string, (typeof netA)['subnet']]> = [
      ['', netA.subnet],
      ['runc', netA.subnet],
      ['fast-net', netB.subnet],
      ['plain', netA.subnet],
    ];
    for (const [handler, subnet] of cases) {
      const id = await d.rpc.run(podConfig(), handler);
      const st = (await d.rpc.status(id)).status!;
      expect(st.runtimeHandler).toBe(handler);
      expect(inSubnet(st.network!.ip, subnet), `handler "${handler}": ${st.network!.ip} in ${subnet.subnet}`).toBe(true);
    }
    expect((await d.rpc.list()).map((p) => p.runtimeHandler).sort()).toEqual(['', 'fast-net', 'plain', 'runc']);

    const err = await rpcError(d.rpc.run(podConfig(), 'nope'));
    expect(err.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(err.details).toContain('"nope"');
    for (const h of ['fast-net', 'plain', 'runc']) expect(err.details).toContain(h);

    for (const p of await d.rpc.list()) {
      await d.rpc.stop(p.id);
      await d.rpc.remove(p.id);
    }
    expect(await d.netnsFiles()).toEqual([]);
  });
});

describe('host network', () => {
  it('skips CNI and the netns for namespace_options.network = NODE', async () => {
    const { d } = await daemonWithNetwork();
    const cfg = podConfig({ linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE } } } });
    const id = await d.rpc.run(cfg);
    const res = await d.rpc.status(id, true);
    expect(res.status?.network?.ip).toBe('');
    expect(res.status?.network?.additionalIps).toEqual([]);
    expect(res.status?.linux?.namespaces?.options?.network).toBe(NamespaceMode.NODE);
    expect(JSON.parse(res.info['info'])).toMatchObject({ hostNetwork: true, netNamespacePath: '' });
    expect(await d.netnsFiles()).toEqual([]);
    expect(await d.cacheEntries()).toEqual([]);
    await d.rpc.stop(id);
    expect((await d.rpc.status(id)).status?.state).toBe(PodSandboxState.SANDBOX_NOTREADY);
    await d.rpc.remove(id);
    expect(await d.rpc.list()).toEqual([]);
  });
});

describe('StopPodSandbox / RemovePodSandbox', () => {
  it('stop releases the netns, the IP and the cache; stop/remove are idempotent', async () => {
    const { d, net } = await daemonWithNetwork();
    const id = await d.rpc.run(podConfig());
    const ip = await podIP(d, id);
    const ns = await d.rpc.netnsPath(id);
    const alloc = join(net.dataDir, net.name, ip);
    expect(await exists(ns)).toBe(true);
    expect(await nsfsMountsUnder(ns)).toEqual([ns]);
    expect(await exists(alloc)).toBe(true);
    // Every pod also gets the built-in loopback network (go-cni's WithLoNetwork).
    expect(await d.cacheEntries()).toEqual([`cni-loopback-${id}-lo`, `${net.name}-${id}-eth0`].sort());

    await d.rpc.stop(id);
    expect(await exists(ns)).toBe(false);
    expect(await nsfsMountsUnder(d.netnsDir)).toEqual([]);
    expect(await d.netnsFiles()).toEqual([]);
    expect(await exists(alloc)).toBe(false);
    expect(await d.cacheEntries()).toEqual([]);
    const st = (await d.rpc.status(id)).status!;
    expect(st.state).toBe(PodSandboxState.SANDBOX_NOTREADY);
    expect(st.network?.ip).toBe('');

    await d.rpc.stop(id);
    await d.rpc.stop(UNKNOWN_ID);
    await d.rpc.remove(UNKNOWN_ID);
    await d.rpc.remove(id);
    await d.rpc.remove(id);
    const err = await rpcError(d.rpc.status(id));
    expect(err.code).toBe(grpcStatus.NOT_FOUND);
    expect(await readdir(d.stateDir).then((f) => f.filter((n) => n.includes(id)))).toEqual([]);
  });
});

describe('bad input', () => {
  it('refuses invalid pod configs with INVALID_ARGUMENT naming the field, leaving nothing behind', async () => {
    const { d } = await daemonWithNetwork();
    const pm = (p: { containerPort?: number; hostPort?: number; hostIp?: string; protocol?: Protocol }): PodSandboxConfig =>
      podConfig({ portMappings: [{ containerPort: 8080, hostPort: 30000, protocol: Protocol.TCP, ...p }] });
    const cases: Array<[string, PodSandboxConfig, RegExp]> = [
      ['missing metadata', PodSandboxConfig.fromPartial({ labels: { a: 'b' } }), /config\.metadata is required/],
      ['empty name', podConfig({ metadata: { name: '' } }), /config\.metadata\.name is required/],
      ['empty namespace', podConfig({ metadata: { namespace: '' } }), /config\.metadata\.namespace is required/],
      ['empty uid', podConfig({ metadata: { uid: '' } }), /config\.metadata\.uid is required/],
      ['name with ;', podConfig({ metadata: { name: 'a;b' } }), /config\.metadata\.name .*must not contain/],
      ['name with =', podConfig({ metadata: { name: 'a=b' } }), /config\.metadata\.name .*must not contain/],
      ['name with \\n', podConfig({ metadata: { name: 'a\nb' } }), /config\.metadata\.name .*must not contain/],
      ['container_port 0', pm({ containerPort: 0 }), /port_mappings\[0\]\.container_port 0/],
      ['container_port 70000', pm({ containerPort: 70000 }), /port_mappings\[0\]\.container_port 70000/],
      ['host_port 70000', pm({ hostPort: 70000 }), /port_mappings\[0\]\.host_port 70000/],
      ['protocol 7', pm({ protocol: 7 as Protocol }), /port_mappings\[0\]\.protocol 7/],
      ['host_ip nope', pm({ hostIp: 'nope' }), /port_mappings\[0\]\.host_ip "nope"/],
      ['bandwidth abc', podConfig({ annotations: { 'kubernetes.io/ingress-bandwidth': 'abc' } }), /kubernetes\.io\/ingress-bandwidth.*not a resource quantity/],
      ['bandwidth 10', podConfig({ annotations: { 'kubernetes.io/egress-bandwidth': '10' } }), /kubernetes\.io\/egress-bandwidth.*small/],
      ['bandwidth 2P', podConfig({ annotations: { 'kubernetes.io/ingress-bandwidth': '2P' } }), /kubernetes\.io\/ingress-bandwidth.*large/],
    ];
    for (const [what, cfg, message] of cases) {
      const err = await rpcError(d.rpc.run(cfg));
      expect({ what, code: grpcStatus[err.code] }).toEqual({ what, code: 'INVALID_ARGUMENT' });
      expect(err.details, what).toMatch(message);
    }
    expect(await d.netnsFiles()).toEqual([]);
    expect(await d.cacheEntries()).toEqual([]);
    expect(await d.rpc.list()).toEqual([]);

    // Sandbox ids: not hex → INVALID_ARGUMENT, unknown → NOT_FOUND.
    const bad = await rpcError(d.rpc.status('zz'));
    expect(bad.code).toBe(grpcStatus.INVALID_ARGUMENT);
    expect(bad.details).toMatch(/pod_sandbox_id/);
    expect((await rpcError(d.rpc.status(UNKNOWN_ID))).code).toBe(grpcStatus.NOT_FOUND);
    expect((await rpcError(d.rpc.status(''))).code).toBe(grpcStatus.INVALID_ARGUMENT);
  });

  it('ALREADY_EXISTS for the same pod attempt while the first is ready', async () => {
    const { d } = await daemonWithNetwork();
    const cfg = podConfig();
    const id = await d.rpc.run(cfg);
    const err = await rpcError(d.rpc.run(cfg));
    expect(err.code).toBe(grpcStatus.ALREADY_EXISTS);
    expect(err.details).toContain(id);
    // A new attempt of the same pod is a new sandbox.
    const next = PodSandboxConfig.fromPartial({ ...cfg, metadata: { ...cfg.metadata!, attempt: cfg.metadata!.attempt + 1 } });
    const id2 = await d.rpc.run(next);
    expect(id2).not.toBe(id);
    expect(await d.netnsFiles()).toHaveLength(2);
  });

  it('container RPCs are UNIMPLEMENTED, pointing at pod sandbox networking', async () => {
    const d = await startDaemon();
    const err = await rpcError(d.rpc.call('createContainer', CreateContainerRequest.fromPartial({ podSandboxId: UNKNOWN_ID })));
    expect(err.code).toBe(grpcStatus.UNIMPLEMENTED);
    expect(err.details).toMatch(/pod sandbox networking/);
  });
});

describe('Status and the conf dir', () => {
  it('is not ready with an empty conf dir, becomes ready when a conflist appears, reports broken files', async () => {
    const d = await startDaemon();
    const s0 = await d.rpc.runtimeStatus();
    expect(condition(s0, 'RuntimeReady').status).toBe(true);
    const net0 = condition(s0, 'NetworkReady');
    expect(net0.status).toBe(false);
    expect(net0.reason).toBe('NetworkPluginNotReady');
    expect(net0.message).toContain(d.confDir);
    const refused = await rpcError(d.rpc.run(podConfig()));
    expect(refused.code).toBe(grpcStatus.FAILED_PRECONDITION);
    expect(await d.netnsFiles()).toEqual([]);

    const net = testNetwork(d.root);
    await writeAtomic(join(d.confDir, '10-net.conflist'), net.text, d.root);
    const started = Date.now();
    let ready = false;
    while (Date.now() - started < 10_000) {
      if (condition(await d.rpc.runtimeStatus(), 'NetworkReady').status) {
        ready = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(ready, 'NetworkReady within 10 s of writing the conflist').toBe(true);

    const verbose = await d.rpc.runtimeStatus(true);
    const cniconfig = JSON.parse(verbose.info['cniconfig']) as Record<string, { confDir: string; networks: Array<{ name: string }> }>;
    expect(cniconfig['default']?.confDir).toBe(d.confDir);
    expect(cniconfig['default']?.networks.map((n) => n.name)).toContain(net.name);
    const config = JSON.parse(verbose.info['config']) as { socket: string; cni: { confDir: string } };
    expect(config.socket).toBe(d.socket);
    expect(config.cni.confDir).toBe(d.confDir);

    // A broken file next to the good one: still ready, and verbose info names it.
    await writeAtomic(join(d.confDir, '20-broken.conflist'), '{ "name": "broken", "plugins": [', d.root);
    expect(
      await waitFor(async () => JSON.stringify((await d.rpc.runtimeStatus(true)).info).includes('20-broken.conflist'), 10_000, 200),
      'verbose Status mentions 20-broken.conflist',
    ).toBe(true);
    expect(condition(await d.rpc.runtimeStatus(), 'NetworkReady').status).toBe(true);

    const id = await d.rpc.run(podConfig());
    expect(inSubnet(await podIP(d, id), net.subnet)).toBe(true);
  });

  it('UpdateRuntimeConfig renders conf_template into the conf dir', async () => {
    const root = await newRoot();
    const bridge = uniqueBridge();
    const subnet = uniqueSubnet();
    const template = join(root, 'template.json');
    // containerd's template style: PodCIDR, PodCIDRRanges with a comma between ranges, Routes.
    await writeFile(
      template,
      `{
  "cniVersion": "1.0.0",
  "name": "podnet-net",
  "podCIDR": "{{.PodCIDR}}",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${bridge}",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "${join(root, 'ipam')}",
        "ranges": [{{range $i, $range := .PodCIDRRanges}}{{if $i}},{{end}}[{"subnet": "{{$range}}"}]{{end}}],
        "routes": [{{range $i, $route := .Routes}}{{if $i}},{{end}}{"dst": "{{$route}}"}{{end}}]
      }
    }
  ]
}
`,
    );
    const d = await startDaemon({ root, cni: { conf_template: template } });
    expect(condition(await d.rpc.runtimeStatus(), 'NetworkReady').status).toBe(false);

    for (const bad of ['nope', '10.1.2.3/33', '10.1.2.0/24/1', '10.1.2.0']) {
      const err = await rpcError(d.rpc.updateRuntimeConfig(bad));
      expect({ bad, code: grpcStatus[err.code] }).toEqual({ bad, code: 'INVALID_ARGUMENT' });
      expect(err.details).toMatch(/pod_cidr/);
    }
    expect(await readdir(d.confDir)).toEqual([]);

    await d.rpc.updateRuntimeConfig(subnet.subnet);
    const rendered = JSON.parse(await readFile(join(d.confDir, '10-podnet-net.conflist'), 'utf8')) as {
      podCIDR: string;
      plugins: Array<{ ipam: { ranges: Array<Array<{ subnet: string }>>; routes: Array<{ dst: string }> } }>;
    };
    expect(rendered.podCIDR).toBe(subnet.subnet);
    expect(rendered.plugins[0]?.ipam.ranges).toEqual([[{ subnet: subnet.subnet }]]);
    expect(rendered.plugins[0]?.ipam.routes).toEqual([{ dst: '0.0.0.0/0' }]);
    expect(await waitFor(async () => condition(await d.rpc.runtimeStatus(), 'NetworkReady').status, 10_000, 200)).toBe(true);
    expect(JSON.parse((await d.rpc.runtimeStatus(true)).info['podCIDRs'])).toEqual([subnet.subnet]);

    const id = await d.rpc.run(podConfig());
    expect(inSubnet(await podIP(d, id), subnet)).toBe(true);
  });
});

describe('the socket and the process', () => {
  it('socket is 0660; a second daemon refuses a live socket; a stale one is replaced; SIGTERM exits 0', async () => {
    const d = await startDaemon();
    expect((await stat(d.socket)).mode & 0o777).toBe(0o660);

    const second = await startDaemon({ socket: d.socket }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(second).toBeInstanceOf(DaemonStartError);
    const e = second as DaemonStartError;
    expect(e.exitCode).not.toBe(0);
    expect(e.exitCode).not.toBeUndefined();
    expect(e.stderr).toMatch(/already serving/);
    // The first one still answers.
    expect((await d.rpc.version()).runtimeApiVersion).toBe('v1');

    await d.kill();
    expect((await stat(d.socket)).isSocket()).toBe(true);
    await d.restart();
    expect((await d.rpc.version()).runtimeApiVersion).toBe('v1');
    expect((await stat(d.socket)).mode & 0o777).toBe(0o660);
    const pid = d.pid;
    expect(await d.stop()).toBe(0);
    expect(await pidAlive(pid)).toBe(false);
  });

  it('RuntimeConfig reports the configured cgroup driver', async () => {
    const d = await startDaemon({ top: { cgroup_driver: 'cgroupfs' } });
    expect((await d.rpc.runtimeConfig()).linux?.cgroupDriver).toBe(CgroupDriver.CGROUPFS);
    const d2 = await startDaemon();
    expect((await d2.rpc.runtimeConfig()).linux?.cgroupDriver).toBe(CgroupDriver.SYSTEMD);
  });

  it('spawner: podnet-spawner forks the plugins by default; "inline" forks from podnetd; both run pods', async () => {
    const helperChildren = async (pid: number): Promise<string[]> => {
      const kids = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean);
      const comms = await Promise.all(kids.map((k) => readFile(`/proc/${k}/comm`, 'utf8').then((c) => c.trim(), () => '')));
      return comms.filter((c) => c === 'podnet-spawner');
    };
    for (const spawner of ['helper', 'inline'] as const) {
      const root = await newRoot();
      const net = testNetwork(root);
      const d = await startDaemon({ root, confFiles: { '10-net.conflist': net.text }, top: { spawner } });
      const id = await d.rpc.run(podConfig());
      const ip = await podIP(d, id);
      expect(inSubnet(ip, net.subnet), `${spawner}: ${ip} in ${net.subnet.subnet}`).toBe(true);
      expect(await helperChildren(d.pid), spawner).toEqual(spawner === 'helper' ? ['podnet-spawner'] : []);
      await d.rpc.stop(id);
      await d.rpc.remove(id);
      expect(await d.rpc.list()).toEqual([]);
    }
    const bad = await startDaemon({ top: { spawner: 'fork' } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(bad).toBeInstanceOf(DaemonStartError);
    expect((bad as DaemonStartError).stderr).toMatch(/spawner: must be one of helper, inline/);
  });

  it('an unknown config key stops the daemon at start, naming the key', async () => {
    const err = await startDaemon({ cni: { bogus: 1 } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DaemonStartError);
    expect((err as DaemonStartError).exitCode).toBe(2);
    expect((err as DaemonStartError).stderr).toMatch(/cni\.bogus/);
  });
});

describe('crictl fixture replay', () => {
  const methodKey = (m: string): keyof typeof RuntimeServiceService => (m[0].toLowerCase() + m.slice(1)) as keyof typeof RuntimeServiceService;

  it('answers the exact bytes crictl sent for runp (basic, hostnet, handler, full with Multus networks)', async () => {
    const root = await newRoot();
    const net = testNetwork(root);
    const fast = testNetwork(root);
    const fastDir = join(root, 'fast.d');
    await mkdir(fastDir, { recursive: true });
    await writeFile(join(fastDir, '10-fast.conflist'), fast.text);
    // runp-full asks for Multus networks "macvlan-conf@net1, shop/storage-net" (pod namespace
    // "shop"): NetworkAttachmentDefinitions in the attachments dir, here two more bridge networks
    // (the name is just a name). Its port mappings and bandwidth annotations reach no plugin: the
    // cluster network has neither portmap nor bandwidth, so its fixed host ports touch nothing.
    const extra1 = testNetwork(root);
    const extra2 = testNetwork(root);
    const nadDir = join(root, 'attachments.d');
    await mkdir(nadDir, { recursive: true });
    const nad = (name: string, n: ReturnType<typeof testNetwork>): string =>
      JSON.stringify({ apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name, namespace: 'shop' }, spec: { config: n.text } });
    await writeFile(join(nadDir, 'macvlan-conf.json'), nad('macvlan-conf', extra1));
    await writeFile(join(nadDir, 'storage-net.json'), nad('storage-net', extra2));
    const d = await startDaemon({ root, confFiles: { '10-net.conflist': net.text }, runtimes: { 'fast-net': { cni_conf_dir: fastDir } } });

    const expected: Record<string, (ip: string) => boolean> = {
      'runp-basic': (ip) => inSubnet(ip, net.subnet),
      'runp-hostnet': (ip) => ip === '',
      'runp-handler': (ip) => inSubnet(ip, fast.subnet),
      'runp-full': (ip) => inSubnet(ip, net.subnet),
    };
    for (const [dir, ipOk] of Object.entries(expected)) {
      const files = (await readdir(join(FIXTURES, dir))).filter((f) => /^\d{3}-[A-Za-z]+\.bin$/.test(f)).sort();
      expect(files.length, dir).toBeGreaterThan(0);
      let id = '';
      for (const f of files) {
        const method = /^\d{3}-([A-Za-z]+)\.bin$/.exec(f)![1];
        const def = RuntimeServiceService[methodKey(method)];
        const bytes = await readFile(join(FIXTURES, dir, f));
        const res = (await d.rpc.raw(def.path, bytes, def.responseDeserialize)) as Record<string, unknown>;
        if (method === 'Version') {
          for (const k of ['version', 'runtimeName', 'runtimeVersion', 'runtimeApiVersion']) expect(res[k], `${dir}/${f} ${k}`).not.toBe('');
        } else if (method === 'RunPodSandbox') {
          id = String(res['podSandboxId']);
          expect(id, `${dir}/${f}`).toMatch(HEX64);
        }
      }
      expect(id, dir).not.toBe('');
      const ip = await podIP(d, id);
      expect(ipOk(ip), `${dir}: ip "${ip}"`).toBe(true);
      if (dir === 'runp-full') {
        const ns = await d.rpc.netnsPath(id);
        const v4 = async (ifName: string): Promise<string[]> => (await ipAddrsIn(ns, ifName)).filter((a) => a.family === 'inet').map((a) => a.local);
        expect(await v4('eth0')).toEqual([ip]);
        const [net1] = await v4('net1');
        const [net2] = await v4('net2');
        expect(inSubnet(net1 ?? '', extra1.subnet), `net1 ${net1}`).toBe(true);
        expect(inSubnet(net2 ?? '', extra2.subnet), `net2 ${net2}`).toBe(true);
      }
      await d.rpc.stop(id);
      await d.rpc.remove(id);
    }
    expect(await d.netnsFiles()).toEqual([]);
    expect(await d.cacheEntries()).toEqual([]);
  });
});

describe('leaks', () => {
  it('left no namespace mounts, bridges, processes or iptables rules behind', async () => {
    await expectNothingLeft(listenerPids);
  });
});

// Multus-style attachments end to end: a real podnetd with NetworkAttachmentDefinitions in its
// attachments_dir, pods annotated with k8s.v1.cni.cncf.io/networks and
// v1.multus-cni.io/default-network, real bridge / macvlan / host-local plugins in real namespaces.
// Plus unit tests of the annotation parsers (no daemon).
//
// Every e2e test gets its own daemon, temp root, bridges, dummy parent, subnets and host-local
// data dirs; everything is undone by the harness's cleanup stack in afterEach.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { stringify as toYaml } from 'yaml';
import {
  DEFAULT_NETWORK_ANNOTATION,
  NETWORKS_ANNOTATION,
  parseDefaultNetwork,
  parseNetworksAnnotation,
} from '../../src/engine/attachments.js';
import {
  createdBridges,
  createdRoots,
  disposeAll,
  existingBridges,
  inSubnet,
  newRoot,
  nsfsMountsUnder,
  onCleanup,
  podConfig,
  rpcError,
  startDaemon,
  uniqueBridge,
  uniqueSubnet,
  type Daemon,
  type TestSubnet,
} from './harness.js';
import { createParentLink, delHostLink, ipAddrsIn, linkExists, linkInfo, nsExec, randomHex } from '../helpers/env.js';
import { invalidArgumentMessage } from '../helpers/refusal.js';

/** The pods' namespace (podConfig's default): the default namespace of every reference. */
const POD_NS = 'e2e';

// ---- local helpers ------------------------------------------------------------------------------

const createdParents = new Set<string>();

/** A dummy `pd<hex>` in the host namespace, up, as a macvlan master; deleted at cleanup. */
async function dummyParent(): Promise<string> {
  const name = `pd${randomHex(10)}`;
  createdParents.add(name);
  onCleanup(() => delHostLink(name), `ip link del ${name}`);
  await createParentLink(name);
  return name;
}

interface Net {
  /** The CNI network name (spec.config's "name"). */
  name: string;
  subnet: TestSubnet;
  /** host-local dataDir of this network (its own dir under the test root). */
  dataDir: string;
  /** The CNI config (a conflist or a single conf) as an object. */
  config: Record<string, unknown>;
}

function hostLocal(subnet: string, gateway: string | undefined, dataDir: string, defaultRoute = false): Record<string, unknown> {
  return {
    type: 'host-local',
    dataDir,
    ranges: [[{ subnet, ...(gateway ? { gateway } : {}) }]],
    ...(defaultRoute ? { routes: [{ dst: '0.0.0.0/0' }] } : {}),
  };
}

/**
 * bridge (isGateway) + host-local as a conflist, with its own bridge, subnet and dataDir. ipam
 * replaces the host-local config (e.g. a range that cannot allocate).
 */
function bridgeNet(
  root: string,
  name: string,
  opts: { defaultRoute?: boolean; ipsCapability?: boolean; ipam?: (s: TestSubnet, dataDir: string) => Record<string, unknown> } = {},
): Net {
  const subnet = uniqueSubnet();
  const dataDir = join(root, `ipam-${name}`);
  const bridge: Record<string, unknown> = {
    type: 'bridge',
    bridge: uniqueBridge(),
    isGateway: true,
    ipMasq: false,
    ipam: opts.ipam ? opts.ipam(subnet, dataDir) : hostLocal(subnet.subnet, subnet.gateway, dataDir, opts.defaultRoute),
  };
  if (opts.ipsCapability) bridge['capabilities'] = { ips: true };
  return { name, subnet, dataDir, config: { cniVersion: '1.0.0', name, plugins: [bridge] } };
}

/** macvlan (mode bridge) on a dummy parent + host-local, as a single plugin conf (not a list). */
function macvlanNet(root: string, name: string, master: string): Net {
  const subnet = uniqueSubnet();
  const dataDir = join(root, `ipam-${name}`);
  return {
    name,
    subnet,
    dataDir,
    config: { cniVersion: '1.0.0', name, type: 'macvlan', master, mode: 'bridge', ipam: hostLocal(subnet.subnet, subnet.gateway, dataDir) },
  };
}

function nadObject(name: string, namespace: string | undefined, config: Record<string, unknown> | string): Record<string, unknown> {
  return {
    apiVersion: 'k8s.cni.cncf.io/v1',
    kind: 'NetworkAttachmentDefinition',
    metadata: { name, ...(namespace !== undefined ? { namespace } : {}) },
    spec: { config: typeof config === 'string' ? config : JSON.stringify(config) },
  };
}

/** Writes a NAD as YAML (default) or JSON into the daemon's attachments dir; returns the file. */
async function writeNAD(dir: string, name: string, namespace: string | undefined, config: Record<string, unknown> | string, format: 'yaml' | 'json' = 'yaml'): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${namespace ?? 'default'}-${name}.${format}`);
  const obj = nadObject(name, namespace, config);
  await writeFile(file, format === 'yaml' ? toYaml(obj) : JSON.stringify(obj, null, 2));
  return file;
}

/** IP allocation files of host-local under dataDir (`<dataDir>/<network>/<ip>`), as "network/ip". */
async function allocations(dataDir: string): Promise<string[]> {
  const out: string[] = [];
  let nets: string[];
  try {
    nets = await readdir(dataDir);
  } catch {
    return [];
  }
  for (const n of nets) {
    let files: string[];
    try {
      files = await readdir(join(dataDir, n));
    } catch {
      continue;
    }
    for (const f of files) if (isIP(f)) out.push(`${n}/${f}`);
  }
  return out.sort();
}

/** The IPv4 addresses of an interface in the pod's namespace (ip -j addr). */
async function v4Addrs(ns: string, ifname: string): Promise<string[]> {
  return (await ipAddrsIn(ns, ifname)).filter((a) => a.family === 'inet').map((a) => a.local);
}

/** Interface names in the pod's namespace (ip -j link). */
async function podLinks(ns: string): Promise<string[]> {
  const r = await nsExec(ns, 'ip', ['-j', 'link', 'show']);
  expect(r.exitCode, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
}

interface NetStatusEntry {
  name: string;
  interface: string;
  ips: string[];
  mac?: string;
  default: boolean;
}

async function networkStatusOf(d: Daemon, id: string): Promise<NetStatusEntry[]> {
  const info = await d.rpc.statusInfo(id);
  const ns = info['network-status'];
  expect(Array.isArray(ns), JSON.stringify(info)).toBe(true);
  return ns as NetStatusEntry[];
}

function annotated(annotations: Record<string, string>) {
  return podConfig({ annotations: { 'podnet.test/owner': 'e2e', ...annotations } });
}

interface Env {
  root: string;
  d: Daemon;
  nadDir: string;
  cluster: Net;
  a: Net;
  b: Net;
  parent: string;
  /** Every network's dataDir, for "nothing allocated" checks. */
  dataDirs: string[];
}

/**
 * A daemon whose cluster network is bridge + host-local (with a default route via its gateway),
 * and two NADs in the pods' namespace: a-net (macvlan on a dummy, YAML file) and b-net (bridge,
 * JSON file). extra() may write more NADs before the daemon starts.
 */
async function setup(extra?: (e: Omit<Env, 'd'>) => Promise<string[] | void>): Promise<Env> {
  const root = await newRoot();
  const nadDir = join(root, 'attachments.d');
  const parent = await dummyParent();
  const cluster = bridgeNet(root, `cluster-${randomHex(6)}`, { defaultRoute: true });
  const a = macvlanNet(root, 'a-net', parent);
  const b = bridgeNet(root, 'b-net');
  await writeNAD(nadDir, 'a-net', POD_NS, a.config, 'yaml');
  await writeNAD(nadDir, 'b-net', POD_NS, b.config, 'json');
  const partial = { root, nadDir, cluster, a, b, parent, dataDirs: [cluster.dataDir, a.dataDir, b.dataDir] };
  const more = (await extra?.(partial)) ?? [];
  partial.dataDirs.push(...more);
  const d = await startDaemon({ root, confFiles: { '10-cluster.conflist': JSON.stringify(cluster.config, null, 2) } });
  return { ...partial, d };
}

/**
 * Nothing of a pod exists: no netns file or mount, no cache entry, no allocation, no sandbox.
 * Compared as one object so a failure shows everything that was left.
 */
async function expectNothingCreated(e: Env): Promise<void> {
  const allocs: Record<string, string[]> = {};
  for (const dir of e.dataDirs) allocs[dir] = await allocations(dir);
  const sandboxes = await e.d.rpc.list();
  expect({
    netnsFiles: await e.d.netnsFiles(),
    netnsMounts: await nsfsMountsUnder(e.d.netnsDir),
    cache: await e.d.cacheEntries(),
    allocations: allocs,
    sandboxes: sandboxes.map((p) => `${p.id.slice(0, 12)} state=${p.state}`),
  }).toEqual({
    netnsFiles: [],
    netnsMounts: [],
    cache: [],
    allocations: Object.fromEntries(e.dataDirs.map((d) => [d, []])),
    sandboxes: [],
  });
}

afterEach(async () => {
  const errors = await disposeAll();
  expect(errors.map((x) => x.message)).toEqual([]);
});

afterAll(async () => {
  // Nothing this file made is left on the host.
  expect(await existingBridges(createdBridges)).toEqual([]);
  for (const p of createdParents) expect(await linkExists(undefined, p), p).toBe(false);
  for (const r of createdRoots) expect(existsSync(r), r).toBe(false);
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  for (const r of createdRoots) expect(mounts.includes(r), r).toBe(false);
});

// ---- e2e ----------------------------------------------------------------------------------------

describe('attachments (e2e)', () => {
  it('adds two attachments next to the cluster network, reports them, and releases every IP on Stop', async () => {
    const e = await setup();
    const id = await e.d.rpc.run(annotated({ [NETWORKS_ANNOTATION]: 'a-net@macv1, b-net' }));
    const ns = await e.d.rpc.netnsPath(id);

    // Interfaces and addresses, as the kernel sees them.
    expect(await podLinks(ns)).toEqual(['eth0', 'lo', 'macv1', 'net2']);
    const eth0 = await v4Addrs(ns, 'eth0');
    const macv1 = await v4Addrs(ns, 'macv1');
    const net2 = await v4Addrs(ns, 'net2');
    expect(eth0).toHaveLength(1);
    expect(macv1).toHaveLength(1);
    expect(net2).toHaveLength(1);
    expect(inSubnet(eth0[0], e.cluster.subnet), eth0[0]).toBe(true);
    expect(inSubnet(macv1[0], e.a.subnet), macv1[0]).toBe(true);
    expect(inSubnet(net2[0], e.b.subnet), net2[0]).toBe(true);
    expect((await linkInfo(ns, 'macv1'))?.kind).toBe('macvlan');
    expect((await linkInfo(ns, 'net2'))?.kind).toBe('veth');
    const macs = {
      eth0: (await linkInfo(ns, 'eth0'))!.address,
      macv1: (await linkInfo(ns, 'macv1'))!.address,
      net2: (await linkInfo(ns, 'net2'))!.address,
    };

    // network-status: the cluster network first and default, then the attachments in order.
    const st = await networkStatusOf(e.d, id);
    expect(st).toHaveLength(3);
    expect(st[0]).toMatchObject({ name: e.cluster.name, interface: 'eth0', ips: eth0, mac: macs.eth0, default: true });
    expect(st[1]).toMatchObject({ name: `${POD_NS}/a-net`, interface: 'macv1', ips: macv1, mac: macs.macv1, default: false });
    expect(st[2]).toMatchObject({ name: `${POD_NS}/b-net`, interface: 'net2', ips: net2, mac: macs.net2, default: false });

    // The CRI's pod IP stays the cluster network's.
    const res = await e.d.rpc.status(id);
    expect(res.status?.network?.ip).toBe(eth0[0]);
    expect(res.status?.network?.additionalIps).toEqual([]);

    // One allocation per network, in its own dataDir; a cache entry per attachment.
    expect(await allocations(e.cluster.dataDir)).toEqual([`${e.cluster.name}/${eth0[0]}`]);
    expect(await allocations(e.a.dataDir)).toEqual([`a-net/${macv1[0]}`]);
    expect(await allocations(e.b.dataDir)).toEqual([`b-net/${net2[0]}`]);
    const cache = await e.d.cacheEntries();
    for (const suffix of [`${id}-eth0`, `${id}-macv1`, `${id}-net2`]) expect(cache.some((c) => c.endsWith(suffix)), `${suffix} in ${cache.join(', ')}`).toBe(true);

    await e.d.rpc.stop(id);
    for (const dir of e.dataDirs) expect(await allocations(dir), dir).toEqual([]);
    expect(await e.d.cacheEntries()).toEqual([]);
    expect(await e.d.netnsFiles()).toEqual([]);
    await e.d.rpc.remove(id);
    expect(await e.d.rpc.list()).toEqual([]);
  });

  it('accepts the JSON form with namespaces and interface names', async () => {
    const e = await setup(async ({ nadDir, root }) => {
      // A NAD without metadata.namespace lives in "default".
      const other = bridgeNet(root, 'd-net');
      await writeNAD(nadDir, 'd-net', undefined, other.config);
      return [other.dataDir];
    });
    const value = JSON.stringify([
      { name: 'a-net', interface: 'macv1' },
      { name: 'b-net', namespace: POD_NS },
      { name: 'd-net', namespace: 'default', interface: 'dnet' },
    ]);
    const id = await e.d.rpc.run(annotated({ [NETWORKS_ANNOTATION]: value }));
    const ns = await e.d.rpc.netnsPath(id);
    expect(await podLinks(ns)).toEqual(['dnet', 'eth0', 'lo', 'macv1', 'net2']);
    const st = await networkStatusOf(e.d, id);
    expect(st.map((s) => [s.name, s.interface, s.default])).toEqual([
      [e.cluster.name, 'eth0', true],
      [`${POD_NS}/a-net`, 'macv1', false],
      [`${POD_NS}/b-net`, 'net2', false],
      ['default/d-net', 'dnet', false],
    ]);
    await e.d.rpc.stop(id);
    for (const dir of e.dataDirs) expect(await allocations(dir), dir).toEqual([]);
    expect(await e.d.cacheEntries()).toEqual([]);
  });

  it('reads NAD files as Multus reads NADs: no "name" in spec.config, several documents, a kubectl List, no spec (the conf-dir network)', async () => {
    const e = await setup(async ({ nadDir, root, parent, cluster }) => {
      // Multus's documented NAD: a single plugin config in a multi-line single-quoted YAML string, without "name".
      const m = macvlanNet(root, 'm-net', parent);
      delete m.config['name'];
      const l = bridgeNet(root, 'l-net');
      l.config['name'] = '';
      const single = (cfg: Record<string, unknown>): string => `'${JSON.stringify(cfg, null, 2).split('\n').join('\n    ')}'`;
      await writeFile(
        join(nadDir, 'multus-shapes.yaml'),
        [
          `apiVersion: "k8s.cni.cncf.io/v1"\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: m-net\n  namespace: ${POD_NS}\nspec:\n  config: ${single(m.config)}\n`,
          'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unrelated\ndata:\n  k: v\n',
          // No spec and no namespace: the conf-dir network of that name, in "default".
          `apiVersion: "k8s.cni.cncf.io/v1"\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: ${cluster.name}\n`,
        ].join('---\n'),
      );
      await writeFile(
        join(nadDir, 'kubectl-get.yaml'),
        toYaml({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items: [nadObject('l-net', POD_NS, l.config)] }),
      );
      return [m.dataDir, l.dataDir];
    });
    const id = await e.d.rpc.run(
      annotated({ [NETWORKS_ANNOTATION]: 'm-net, l-net@lnet0', [DEFAULT_NETWORK_ANNOTATION]: `default/${e.cluster.name}` }),
    );
    const ns = await e.d.rpc.netnsPath(id);
    expect(await podLinks(ns)).toEqual(['eth0', 'lnet0', 'lo', 'net1']);
    expect((await linkInfo(ns, 'net1'))?.kind).toBe('macvlan');
    expect(inSubnet((await v4Addrs(ns, 'eth0'))[0] ?? '', e.cluster.subnet)).toBe(true);
    const st = await networkStatusOf(e.d, id);
    expect(st.map((s) => [s.name, s.interface])).toEqual([
      [`default/${e.cluster.name}`, 'eth0'],
      [`${POD_NS}/m-net`, 'net1'],
      [`${POD_NS}/l-net`, 'lnet0'],
    ]);
    // The injected names are the CNI network names: the cache is keyed by them.
    expect((await e.d.cacheEntries()).some((c) => c.startsWith('m-net-')) && (await e.d.cacheEntries()).some((c) => c.startsWith('l-net-'))).toBe(true);
    await e.d.rpc.stop(id);
    for (const dir of e.dataDirs) expect(await allocations(dir), dir).toEqual([]);
    expect(await e.d.cacheEntries()).toEqual([]);
    await e.d.rpc.remove(id);
  });

  it('rolls back the first two attachments when the third fails (host-local range too small, /31)', async () => {
    const e = await setup(async ({ nadDir, root }) => {
      // A valid bridge whose host-local range has no allocatable address: ADD fails in IPAM.
      const c = bridgeNet(root, 'c-net', { ipam: (s, dataDir) => hostLocal(`${s.prefix}.0/31`, undefined, dataDir) });
      await writeNAD(nadDir, 'c-net', POD_NS, c.config);
      return [c.dataDir];
    });
    const err = await rpcError(e.d.rpc.run(annotated({ [NETWORKS_ANNOTATION]: 'a-net, b-net, c-net' })));
    expect(err.code).not.toBe(status.OK);
    expect(err.details).toMatch(/too small/);
    await expectNothingCreated(e);
  });

  it('rolls back the first two attachments when the third fails (host-local range exhausted)', async () => {
    let reserved = '';
    const e = await setup(async ({ nadDir, root }) => {
      // A /30 with the gateway on .1 has one address (.2), already held by another container.
      const c = bridgeNet(root, 'c-net', { ipam: (s, dataDir) => hostLocal(`${s.prefix}.0/30`, `${s.prefix}.1`, dataDir) });
      await mkdir(join(c.dataDir, 'c-net'), { recursive: true });
      reserved = `c-net/${c.subnet.prefix}.2`;
      await writeFile(join(c.dataDir, reserved), 'someone-else\r\neth0');
      await writeNAD(nadDir, 'c-net', POD_NS, c.config);
      return [];
    });
    const err = await rpcError(e.d.rpc.run(annotated({ [NETWORKS_ANNOTATION]: 'a-net, b-net, c-net' })));
    expect(err.code).not.toBe(status.OK);
    expect(err.details).toMatch(/no IP addresses available/);
    await expectNothingCreated(e);
    // The other container's address is untouched.
    expect(existsSync(join(e.root, 'ipam-c-net', reserved))).toBe(true);
  });

  it('releases the IP of an attachment whose NAD file was deleted between Run and Stop', async () => {
    const e = await setup();
    const id = await e.d.rpc.run(annotated({ [NETWORKS_ANNOTATION]: 'a-net, b-net' }));
    const ns = await e.d.rpc.netnsPath(id);
    const net2 = await v4Addrs(ns, 'net2');
    expect(await allocations(e.b.dataDir)).toEqual([`b-net/${net2[0]}`]);
    await rm(join(e.nadDir, `${POD_NS}-b-net.json`));
    await rm(join(e.nadDir, `${POD_NS}-a-net.yaml`));

    // The NADs are gone for new pods...
    const err = await rpcError(e.d.rpc.run(annotated({ [NETWORKS_ANNOTATION]: 'b-net' })));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toContain(`no NetworkAttachmentDefinition ${POD_NS}/b-net`);
    // ...and the existing pod still reports them.
    expect((await networkStatusOf(e.d, id)).map((s) => s.interface)).toEqual(['eth0', 'net1', 'net2']);

    await e.d.rpc.stop(id);
    for (const dir of e.dataDirs) expect(await allocations(dir), dir).toEqual([]);
    expect(await e.d.cacheEntries()).toEqual([]);
    expect(await e.d.netnsFiles()).toEqual([]);
  });

  it('rejects every malformed annotation with INVALID_ARGUMENT naming the item, before anything exists', async () => {
    const e = await setup();
    const json = (items: unknown[]): string => JSON.stringify(items);
    const cases: Array<{ ann: Record<string, string>; msg: string[] }> = [
      { ann: { [NETWORKS_ANNOTATION]: 'Bad_Name' }, msg: ['name "Bad_Name"', 'DNS-1123'] },
      { ann: { [NETWORKS_ANNOTATION]: 'a-net, Bad/b-net' }, msg: ['namespace "Bad"', '"Bad/b-net"'] },
      { ann: { [NETWORKS_ANNOTATION]: 'a-net@this-name-is-way-too-long' }, msg: ['interface "this-name-is-way-too-long"', '"a-net@this-name-is-way-too-long"'] },
      { ann: { [NETWORKS_ANNOTATION]: 'a-net@a/b' }, msg: ['interface "a/b"', '"a-net@a/b"'] },
      { ann: { [NETWORKS_ANNOTATION]: 'a-net@x, b-net@x' }, msg: ['"b-net@x"', 'interface name "x" is used twice'] },
      // b-net is the second item: it would get net2, which a-net took.
      { ann: { [NETWORKS_ANNOTATION]: 'a-net@net2, b-net' }, msg: ['"b-net"', 'interface name "net2" is used twice'] },
      { ann: { [NETWORKS_ANNOTATION]: 'a-net@eth0' }, msg: ['"a-net@eth0"', 'interface name "eth0" is used twice'] },
      { ann: { [NETWORKS_ANNOTATION]: '[{"name": }' }, msg: [NETWORKS_ANNOTATION, 'invalid JSON'] },
      { ann: { [NETWORKS_ANNOTATION]: '{"name": "a-net"}' }, msg: [NETWORKS_ANNOTATION, 'must be a list'] },
      { ann: { [NETWORKS_ANNOTATION]: 'nope' }, msg: ['"nope"', `no NetworkAttachmentDefinition ${POD_NS}/nope`] },
      { ann: { [NETWORKS_ANNOTATION]: 'a-net, other/b-net' }, msg: ['"other/b-net"', 'no NetworkAttachmentDefinition other/b-net'] },
      { ann: { [NETWORKS_ANNOTATION]: json([{ name: 'a-net', mac: '02:00:00:00:00:01' }]) }, msg: [`"${POD_NS}/a-net"`, 'requests "mac"', '"mac" capability'] },
      { ann: { [NETWORKS_ANNOTATION]: json([{ name: 'a-net', ips: ['10.1.1.1/24'] }]) }, msg: [`"${POD_NS}/a-net"`, 'requests "ips"', '"ips" capability'] },
      {
        ann: { [NETWORKS_ANNOTATION]: json([{ name: 'b-net', portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] }]) },
        msg: [`"${POD_NS}/b-net"`, 'requests "portMappings"', '"portMappings" capability'],
      },
      { ann: { [NETWORKS_ANNOTATION]: json([{ name: 'b-net', bandwidth: { ingressRate: 1000, ingressBurst: 1000 } }]) }, msg: [`"${POD_NS}/b-net"`, 'requests "bandwidth"', '"bandwidth" capability'] },
      { ann: { [NETWORKS_ANNOTATION]: json([{ name: 'b-net', mac: 'not-a-mac' }]) }, msg: ['"mac" of "b-net"', 'not a MAC address'] },
      { ann: { [NETWORKS_ANNOTATION]: json([{ name: 'b-net', timeout: 'soon' }]) }, msg: ['"timeout" of "b-net"'] },
      // The bad item is the last one: the good ones before it must not have been set up either.
      { ann: { [NETWORKS_ANNOTATION]: 'a-net, b-net, nope' }, msg: ['"nope"'] },
      { ann: { [DEFAULT_NETWORK_ANNOTATION]: 'nope' }, msg: [DEFAULT_NETWORK_ANNOTATION, '"nope"', `no NetworkAttachmentDefinition ${POD_NS}/nope`] },
      { ann: { [DEFAULT_NETWORK_ANNOTATION]: 'b-net@foo' }, msg: [DEFAULT_NETWORK_ANNOTATION, '"b-net@foo"', 'must not name an interface'] },
      { ann: { [DEFAULT_NETWORK_ANNOTATION]: 'Bad_Name' }, msg: [DEFAULT_NETWORK_ANNOTATION, 'name "Bad_Name"'] },
    ];
    const failures: string[] = [];
    for (const c of cases) {
      let outcome: string;
      try {
        const id = await e.d.rpc.run(annotated(c.ann));
        outcome = `accepted (sandbox ${id})`;
        await e.d.rpc.stop(id).catch(() => undefined);
        await e.d.rpc.remove(id).catch(() => undefined);
      } catch (err) {
        const x = err as { code?: number; details?: string; message: string };
        if (x.code !== status.INVALID_ARGUMENT) outcome = `code ${String(x.code)}: ${x.message}`;
        else {
          const missing = c.msg.filter((m) => !(x.details ?? '').includes(m));
          outcome = missing.length ? `message "${x.details}" lacks ${missing.map((m) => JSON.stringify(m)).join(', ')}` : 'ok';
        }
      }
      if (outcome !== 'ok') failures.push(`${JSON.stringify(c.ann)}: ${outcome}`);
    }
    expect(failures).toEqual([]);
    await expectNothingCreated(e);
  });

  it('v1.multus-cni.io/default-network replaces the cluster network on eth0', async () => {
    const e = await setup();
    const id = await e.d.rpc.run(annotated({ [DEFAULT_NETWORK_ANNOTATION]: 'b-net' }));
    const ns = await e.d.rpc.netnsPath(id);
    expect(await podLinks(ns)).toEqual(['eth0', 'lo']);
    const eth0 = await v4Addrs(ns, 'eth0');
    expect(eth0).toHaveLength(1);
    expect(inSubnet(eth0[0], e.b.subnet), eth0[0]).toBe(true);
    expect(inSubnet(eth0[0], e.cluster.subnet)).toBe(false);
    expect((await e.d.rpc.status(id)).status?.network?.ip).toBe(eth0[0]);
    const st = await networkStatusOf(e.d, id);
    expect(st).toHaveLength(1);
    expect(st[0]).toMatchObject({ name: `${POD_NS}/b-net`, interface: 'eth0', ips: eth0, default: true });
    expect(await allocations(e.cluster.dataDir)).toEqual([]);
    expect(await allocations(e.b.dataDir)).toEqual([`b-net/${eth0[0]}`]);

    await e.d.rpc.stop(id);
    for (const dir of e.dataDirs) expect(await allocations(dir), dir).toEqual([]);
    expect(await e.d.cacheEntries()).toEqual([]);
  });

  it('default-network and networks together: eth0 from the replacement, net1 from the attachment', async () => {
    const e = await setup();
    const id = await e.d.rpc.run(annotated({ [DEFAULT_NETWORK_ANNOTATION]: `${POD_NS}/b-net`, [NETWORKS_ANNOTATION]: 'a-net' }));
    const ns = await e.d.rpc.netnsPath(id);
    expect(await podLinks(ns)).toEqual(['eth0', 'lo', 'net1']);
    expect(inSubnet((await v4Addrs(ns, 'eth0'))[0] ?? '', e.b.subnet)).toBe(true);
    expect(inSubnet((await v4Addrs(ns, 'net1'))[0] ?? '', e.a.subnet)).toBe(true);
    await e.d.rpc.stop(id);
    for (const dir of e.dataDirs) expect(await allocations(dir), dir).toEqual([]);
  });

  it('gives the pod exactly the IP asked for with "ips" on a network declaring the ips capability', async () => {
    let ipsNet: Net | undefined;
    const e = await setup(async ({ nadDir, root }) => {
      ipsNet = bridgeNet(root, 'ips-net', { ipsCapability: true });
      await writeNAD(nadDir, 'ips-net', POD_NS, ipsNet.config);
      return [ipsNet.dataDir];
    });
    const n = ipsNet!;
    const want = `${n.subnet.prefix}.77`;
    const id = await e.d.rpc.run(annotated({ [NETWORKS_ANNOTATION]: JSON.stringify([{ name: 'ips-net', interface: 'fixed0', ips: [`${want}/24`] }]) }));
    const ns = await e.d.rpc.netnsPath(id);
    expect(await v4Addrs(ns, 'fixed0')).toEqual([want]);
    expect((await ipAddrsIn(ns, 'fixed0')).find((a) => a.family === 'inet')?.prefixlen).toBe(24);
    expect(await allocations(n.dataDir)).toEqual([`ips-net/${want}`]);
    const st = await networkStatusOf(e.d, id);
    expect(st.find((s) => s.interface === 'fixed0')).toMatchObject({ name: `${POD_NS}/ips-net`, ips: [want], default: false });
    // The cluster network did not get the request.
    expect((await e.d.rpc.status(id)).status?.network?.ip).not.toBe(want);

    await e.d.rpc.stop(id);
    for (const dir of e.dataDirs) expect(await allocations(dir), dir).toEqual([]);
  });

  it('"default-route" moves the pod default route to the attachment\'s gateway', async () => {
    const e = await setup();
    const probe = await e.d.rpc.run(annotated({}));
    const probeNs = await e.d.rpc.netnsPath(probe);
    // Without the request the cluster network has the default route.
    const before = await defaultRoutes(probeNs);
    expect(before).toEqual([{ gateway: e.cluster.subnet.gateway, dev: 'eth0' }]);
    await e.d.rpc.stop(probe);
    await e.d.rpc.remove(probe);

    const id = await e.d.rpc.run(annotated({ [NETWORKS_ANNOTATION]: JSON.stringify([{ name: 'b-net', 'default-route': [e.b.subnet.gateway] }]) }));
    const ns = await e.d.rpc.netnsPath(id);
    expect(await defaultRoutes(ns)).toEqual([{ gateway: e.b.subnet.gateway, dev: 'net1' }]);
    const st = await networkStatusOf(e.d, id);
    expect(st.map((s) => [s.interface, s.default])).toEqual([
      ['eth0', false],
      ['net1', true],
    ]);
    // The CRI pod IP is still the cluster network's.
    expect(inSubnet((await e.d.rpc.status(id)).status?.network?.ip ?? '', e.cluster.subnet)).toBe(true);
    await e.d.rpc.stop(id);
    for (const dir of e.dataDirs) expect(await allocations(dir), dir).toEqual([]);
  });
});

async function defaultRoutes(ns: string): Promise<Array<{ gateway: string; dev: string }>> {
  const r = await nsExec(ns, 'ip', ['-4', '-j', 'route', 'show', 'default']);
  expect(r.exitCode, r.stderr).toBe(0);
  return (JSON.parse(r.stdout || '[]') as Array<{ gateway?: string; dev?: string }>).map((x) => ({ gateway: x.gateway ?? '', dev: x.dev ?? '' }));
}

// ---- unit: the annotation parsers ---------------------------------------------------------------

const invalid = invalidArgumentMessage;

describe('parseNetworksAnnotation', () => {
  it('parses the short form, defaulting the namespace to the pod\'s', () => {
    expect(parseNetworksAnnotation('a-net@macv1, b-net', 'pods')).toEqual([
      { name: 'a-net', namespace: 'pods', interface: 'macv1', source: 'a-net@macv1' },
      { name: 'b-net', namespace: 'pods', source: 'b-net' },
    ]);
    expect(parseNetworksAnnotation('other/c-net@c0,d-net,', 'pods')).toEqual([
      { name: 'c-net', namespace: 'other', interface: 'c0', source: 'other/c-net@c0' },
      { name: 'd-net', namespace: 'pods', source: 'd-net' },
    ]);
    expect(parseNetworksAnnotation('   ', 'pods')).toEqual([]);
    expect(parseNetworksAnnotation('  x  ', 'pods')).toEqual([{ name: 'x', namespace: 'pods', source: 'x' }]);
  });

  it('parses the JSON form with every field', () => {
    const value = JSON.stringify([
      {
        name: 'a-net',
        interface: 'macv1',
        ips: ['10.1.2.3/24'],
        mac: '02:aa:bb:cc:dd:ee',
        'default-route': ['10.1.2.1'],
        portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
        bandwidth: { ingressRate: 1000 },
        'cni-args': { foo: 'bar', n: 3 },
        timeout: '5s',
      },
      { name: 'b-net', namespace: 'other' },
      { name: 'c-net', timeout: 2 },
    ]);
    expect(parseNetworksAnnotation(value, 'pods')).toEqual([
      {
        name: 'a-net',
        namespace: 'pods',
        interface: 'macv1',
        ips: ['10.1.2.3/24'],
        mac: '02:aa:bb:cc:dd:ee',
        defaultRoute: ['10.1.2.1'],
        portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
        bandwidth: { ingressRate: 1000 },
        cniArgs: [
          ['foo', 'bar'],
          ['n', '3'],
        ],
        timeoutMs: 5000,
        source: 'pods/a-net@macv1',
      },
      { name: 'b-net', namespace: 'other', source: 'other/b-net' },
      { name: 'c-net', namespace: 'pods', timeoutMs: 2000, source: 'pods/c-net' },
    ]);
    expect(parseNetworksAnnotation('[]', 'pods')).toEqual([]);
  });

  it('rejects bad names and namespaces', () => {
    expect(invalid(() => parseNetworksAnnotation('Bad_Name', 'pods'))).toBe(
      `annotation ${NETWORKS_ANNOTATION}: name "Bad_Name" in "Bad_Name" is not a DNS-1123 label`,
    );
    expect(invalid(() => parseNetworksAnnotation('ok, Bad/b-net', 'pods'))).toBe(
      `annotation ${NETWORKS_ANNOTATION}: namespace "Bad" in "Bad/b-net" is not a DNS-1123 label`,
    );
    expect(invalid(() => parseNetworksAnnotation('a-net', 'Bad_NS'))).toContain('namespace "Bad_NS" in "a-net"');
    expect(invalid(() => parseNetworksAnnotation(`${'x'.repeat(64)}`, 'pods'))).toContain('is not a DNS-1123 label');
    expect(invalid(() => parseNetworksAnnotation('a/b/c', 'pods'))).toBe(`annotation ${NETWORKS_ANNOTATION}: "a/b/c" is not of the form [namespace/]name[@interface]`);
    expect(invalid(() => parseNetworksAnnotation(JSON.stringify([{ name: 'Bad_Name' }]), 'pods'))).toContain('name "Bad_Name" in "Bad_Name"');
    expect(invalid(() => parseNetworksAnnotation(JSON.stringify([{ name: 'a', namespace: 'Bad' }]), 'pods'))).toContain('namespace "Bad" in "a"');
    expect(invalid(() => parseNetworksAnnotation(JSON.stringify([{ name: 'a', namespace: 7 }]), 'pods'))).toBe(
      `annotation ${NETWORKS_ANNOTATION}: "namespace" of "a" must be a string`,
    );
  });

  it('rejects bad interface names', () => {
    expect(invalid(() => parseNetworksAnnotation('a-net@this-name-is-way-too-long', 'pods'))).toBe(
      `annotation ${NETWORKS_ANNOTATION}: interface "this-name-is-way-too-long" in "a-net@this-name-is-way-too-long" must be 1-15 characters without "/", ":" or spaces`,
    );
    expect(invalid(() => parseNetworksAnnotation('a-net@a/b', 'pods'))).toContain('interface "a/b" in "a-net@a/b"');
    expect(invalid(() => parseNetworksAnnotation('a-net@a:b', 'pods'))).toContain('interface "a:b" in "a-net@a:b"');
    expect(invalid(() => parseNetworksAnnotation('a-net@..', 'pods'))).toContain('interface ".." in "a-net@.."');
    expect(invalid(() => parseNetworksAnnotation(JSON.stringify([{ name: 'a-net', interface: 'x y' }]), 'pods'))).toContain('interface "x y" in "a-net"');
    expect(invalid(() => parseNetworksAnnotation(JSON.stringify([{ name: 'a-net', interface: 3 }]), 'pods'))).toBe(
      `annotation ${NETWORKS_ANNOTATION}: "interface" of "a-net" must be a string`,
    );
    // 15 characters is the kernel's limit and fine.
    expect(parseNetworksAnnotation('a-net@abcdefghijklmno', 'pods')[0]?.interface).toBe('abcdefghijklmno');
  });

  it('rejects bad JSON and bad JSON items', () => {
    expect(invalid(() => parseNetworksAnnotation('[{"name": }', 'pods'))).toMatch(new RegExp(`^annotation ${NETWORKS_ANNOTATION.replace(/\./g, '\\.')}: invalid JSON: `));
    expect(invalid(() => parseNetworksAnnotation('{"name": "a"}', 'pods'))).toBe(`annotation ${NETWORKS_ANNOTATION}: the JSON form must be a list`);
    expect(invalid(() => parseNetworksAnnotation('["a-net"]', 'pods'))).toBe(`annotation ${NETWORKS_ANNOTATION}: item 0 must be an object`);
    expect(invalid(() => parseNetworksAnnotation('[{"name": "a"}, {"interface": "x"}]', 'pods'))).toBe(`annotation ${NETWORKS_ANNOTATION}: item 1 has no "name"`);
    const item = (extra: Record<string, unknown>) => JSON.stringify([{ name: 'a-net', ...extra }]);
    expect(invalid(() => parseNetworksAnnotation(item({ ips: '10.0.0.1' }), 'pods'))).toBe(`annotation ${NETWORKS_ANNOTATION}: "ips" of "a-net" must be a list of strings`);
    expect(invalid(() => parseNetworksAnnotation(item({ 'default-route': [1] }), 'pods'))).toBe(
      `annotation ${NETWORKS_ANNOTATION}: "default-route" of "a-net" must be a list of strings`,
    );
    expect(invalid(() => parseNetworksAnnotation(item({ mac: '02:00:00:00:00' }), 'pods'))).toBe(`annotation ${NETWORKS_ANNOTATION}: "mac" of "a-net" is not a MAC address`);
    expect(invalid(() => parseNetworksAnnotation(item({ portMappings: {} }), 'pods'))).toBe(`annotation ${NETWORKS_ANNOTATION}: "portMappings" of "a-net" must be a list`);
    expect(invalid(() => parseNetworksAnnotation(item({ bandwidth: [] }), 'pods'))).toBe(`annotation ${NETWORKS_ANNOTATION}: "bandwidth" of "a-net" must be an object`);
    expect(invalid(() => parseNetworksAnnotation(item({ 'cni-args': 'x=y' }), 'pods'))).toBe(`annotation ${NETWORKS_ANNOTATION}: "cni-args" of "a-net" must be an object`);
    expect(invalid(() => parseNetworksAnnotation(item({ 'cni-args': { 'a=b': 'c' } }), 'pods'))).toBe(
      `annotation ${NETWORKS_ANNOTATION}: "cni-args.a=b" of "a-net" is not a CNI_ARGS pair (key: letters, digits, "_", "." or "-"; value: no ";", "=", NUL or line break, at most 4096 bytes)`,
    );
    for (const timeout of ['soon', 0, -1, true, '0s']) {
      expect(invalid(() => parseNetworksAnnotation(item({ timeout }), 'pods')), String(timeout)).toBe(
        `annotation ${NETWORKS_ANNOTATION}: "timeout" of "a-net" must be a duration like "30s"`,
      );
    }
  });

  it('rejects more than 32 networks', () => {
    const many = Array.from({ length: 33 }, (_, i) => `n${i}`).join(',');
    expect(invalid(() => parseNetworksAnnotation(many, 'pods'))).toBe(`annotation ${NETWORKS_ANNOTATION}: more than 32 networks`);
    expect(parseNetworksAnnotation(Array.from({ length: 32 }, (_, i) => `n${i}`).join(','), 'pods')).toHaveLength(32);
  });
});

describe('parseDefaultNetwork', () => {
  it('parses [namespace/]name, defaulting the namespace to the pod\'s', () => {
    expect(parseDefaultNetwork('b-net', 'pods')).toEqual({ name: 'b-net', namespace: 'pods', source: 'b-net' });
    expect(parseDefaultNetwork(' kube-system/b-net ', 'pods')).toEqual({ name: 'b-net', namespace: 'kube-system', source: 'kube-system/b-net' });
  });

  it('rejects an interface name and bad names', () => {
    expect(invalid(() => parseDefaultNetwork('b-net@eth1', 'pods'))).toBe(
      `annotation ${DEFAULT_NETWORK_ANNOTATION}: "b-net@eth1" must not name an interface (it is eth0)`,
    );
    expect(invalid(() => parseDefaultNetwork('Bad_Name', 'pods'))).toContain('name "Bad_Name" in "Bad_Name" is not a DNS-1123 label');
    expect(invalid(() => parseDefaultNetwork('', 'pods'))).toContain('is not of the form [namespace/]name');
  });

  it('names its own annotation (not the networks one) in every error', () => {
    for (const bad of ['Bad_Name', 'Bad/b-net', '', 'a/b/c', 'b-net@eth1']) {
      const msg = invalid(() => parseDefaultNetwork(bad, 'pods'));
      expect(msg, bad).toMatch(new RegExp(`^annotation ${DEFAULT_NETWORK_ANNOTATION.replace(/\./g, '\\.')}[ :]`));
      expect(msg, bad).not.toContain(NETWORKS_ANNOTATION);
    }
  });
});

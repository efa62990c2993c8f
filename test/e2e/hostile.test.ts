// Hostile input against a real podnetd: every class of bad request the issue lists, and the fuzz
// classes (random bytes, truncated and bit-flipped messages, wrong wire types, deep nesting,
// oversized messages, a few hundred concurrent calls), sent as raw bytes to every RuntimeService
// method. After each class: every answer was OK or a documented code with a bounded message
// (never UNKNOWN or INTERNAL), the daemon is up, a normal pod cycle works, and nothing is left
// (netns, IPAM files, cache entries, nsfs mounts, veths). Memory is measured before and after.
//
// Counts are fixed and the PRNG is seeded, so a run is reproducible and bounded.
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ListPodSandboxRequest,
  NamespaceMode,
  PodSandboxStatusRequest,
  RunPodSandboxRequest,
  RuntimeServiceService,
  StatusRequest,
  StopPodSandboxRequest,
  UpdateRuntimeConfigRequest,
  VersionRequest,
  type DeepPartial,
  type PodSandboxConfig,
} from '../../src/gen/runtime/v1/api.js';
import { MESSAGE_LIMIT } from '../../src/util/quote.js';
import {
  disposeAll,
  expectNothingLeft,
  inSubnet,
  listDir,
  newRoot,
  nsfsMountsUnder,
  podConfig,
  rpcError,
  startDaemon,
  testNetwork,
  uniqueBridge,
  uniqueSubnet,
  type Daemon,
  type TestNetwork,
  type TestSubnet,
} from './harness.js';
import { sh } from '../helpers/env.js';

const PROTO_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty'] as const;
/** What a client may get for input it chose; anything else (UNKNOWN, INTERNAL...) is a bug. */
const DOCUMENTED = new Set<status>([
  status.OK,
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.FAILED_PRECONDITION,
  status.ALREADY_EXISTS,
  status.UNIMPLEMENTED,
  // grpc-js itself, for a message over podnetd's 16 MiB receive limit.
  status.RESOURCE_EXHAUSTED,
]);
/** A status message is at most MESSAGE_LIMIT characters, plus the clip marker. */
const MAX_DETAILS = MESSAGE_LIMIT + 32;
const MiB = 1024 * 1024;
const NAD_NAME = 'constructor';
const RPC_DEADLINE_MS = 30_000;
/** How long a stream must stay open to count as accepted (a refusal arrives well before). */
const STREAM_OPEN_MS = 3_000;

type MethodDef = (typeof RuntimeServiceService)[keyof typeof RuntimeServiceService];
const METHODS: MethodDef[] = Object.values(RuntimeServiceService);
const rpcName = (m: MethodDef): string => m.path.slice(m.path.lastIndexOf('/') + 1);

// ---- a seeded PRNG (xorshift32), so every run sends the same bytes ------------------------------

let seed = 0x9e3779b9;
function rand(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
}
const randInt = (n: number): number => Math.floor(rand() * n);
function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = randInt(256);
  return b;
}

// ---- raw calls ---------------------------------------------------------------------------------

interface Answer {
  rpc: string;
  code: status;
  details: string;
  /** Which input, for the failure message. */
  what: string;
}

let d: Daemon;
let root: string;
let cluster: TestNetwork;
let nadSubnet: TestSubnet;
let nadBridge: string;
const answers: Answer[] = [];

/** Sends bytes as the request of a method (unary or server-streaming) and collects the status. */
function callRaw(m: MethodDef, bytes: Buffer, what: string): Promise<Answer> {
  const rpc = rpcName(m);
  const deadline = new Date(Date.now() + RPC_DEADLINE_MS);
  const id = (b: Buffer): Buffer => b;
  return new Promise((resolve) => {
    const done = (code: status, details: string): void => {
      const a = { rpc, code, details, what };
      answers.push(a);
      resolve(a);
    };
    if (m.responseStream) {
      const stream = d.client.makeServerStreamRequest(m.path, id, id, bytes, new Metadata(), { deadline });
      // GetContainerEvents stays open for as long as the client listens: a stream still open after
      // a refusal would have arrived is an accepted request, and the client leaves.
      let leftOpen = false;
      const open = setTimeout(() => {
        leftOpen = true;
        stream.cancel();
      }, STREAM_OPEN_MS);
      let settled = false;
      const finish = (code: status, details: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(open);
        done(code, details);
      };
      stream.on('data', () => undefined);
      stream.on('error', (err: { code: status; details: string }) => (leftOpen && err.code === status.CANCELLED ? finish(status.OK, '') : finish(err.code, err.details ?? '')));
      stream.on('end', () => finish(status.OK, ''));
      return;
    }
    d.client.makeUnaryRequest(m.path, id, id, bytes, new Metadata(), { deadline }, (err) => {
      if (err) done(err.code, err.details ?? err.message);
      else done(status.OK, '');
    });
  });
}

/** Runs the calls at most `width` at a time. */
async function inBatches<T>(items: readonly T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

function expectDocumented(list: readonly Answer[]): void {
  const bad = list.filter((a) => !DOCUMENTED.has(a.code) || a.details.length > MAX_DETAILS);
  expect(bad.map((a) => `${a.rpc} ${a.what}: ${status[a.code]} (${a.details.length} chars) ${a.details.slice(0, 200)}`)).toEqual([]);
}

// ---- what "nothing left" means here ------------------------------------------------------------

async function ipamFiles(): Promise<string[]> {
  const out: string[] = [];
  for (const net of await listDir(d.ipamDir)) for (const f of await listDir(join(d.ipamDir, net))) if (/^[\d.]+$|:/.test(f)) out.push(`${net}/${f}`);
  return out;
}

async function bridgePorts(bridge: string): Promise<string[]> {
  const r = await sh('ip', ['-j', 'link', 'show', 'master', bridge]);
  if (r.exitCode !== 0) return [];
  return (JSON.parse(r.stdout || '[]') as Array<{ ifname: string }>).map((l) => l.ifname);
}

/** Stop + remove whatever the class created, then check that nothing is left anywhere. */
async function expectCleanAfter(): Promise<void> {
  const errors: string[] = [];
  for (const p of await d.rpc.list()) {
    await d.rpc.stop(p.id).catch((e: Error) => errors.push(`stop ${p.id}: ${e.message}`));
    await d.rpc.remove(p.id).catch((e: Error) => errors.push(`remove ${p.id}: ${e.message}`));
  }
  expect(errors).toEqual([]);
  expect(await d.rpc.list()).toEqual([]);
  expect(await d.netnsFiles()).toEqual([]);
  expect(await ipamFiles()).toEqual([]);
  expect(await d.cacheEntries()).toEqual([]);
  expect(await nsfsMountsUnder(root)).toEqual([]);
  expect(await bridgePorts(cluster.bridge)).toEqual([]);
  expect(await bridgePorts(nadBridge)).toEqual([]);
}

/** A normal pod: Run, an IP of the network, Stop, Remove. */
async function normalCycle(): Promise<void> {
  expect(d.running).toBe(true);
  const id = await d.rpc.run(podConfig());
  const ip = (await d.rpc.status(id)).status?.network?.ip ?? '';
  expect(inSubnet(ip, cluster.subnet), ip).toBe(true);
  await d.rpc.stop(id);
  await d.rpc.remove(id);
}

async function afterClass(): Promise<void> {
  expectDocumented(answers.splice(0));
  await expectCleanAfter();
  await normalCycle();
  await expectCleanAfter();
}

async function rssKiB(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

// ---- requests ----------------------------------------------------------------------------------

const hex64 = (): string => randomBytes(32).toString('hex');

/** Encoded as is (fromPartial would drop a "__proto__" key before it reached the wire). */
function runBytes(config: PodSandboxConfig, runtimeHandler = ''): Buffer {
  return Buffer.from(RunPodSandboxRequest.encode({ config, runtimeHandler }).finish());
}

/** A realistic encoded request per method (others get a RunPodSandbox's bytes: foreign fields). */
function sampleFor(m: MethodDef): Buffer {
  switch (rpcName(m)) {
    case 'Version':
      return Buffer.from(VersionRequest.encode({ version: 'v1' }).finish());
    case 'Status':
      return Buffer.from(StatusRequest.encode({ verbose: true }).finish());
    case 'StopPodSandbox':
    case 'RemovePodSandbox':
      return Buffer.from(StopPodSandboxRequest.encode({ podSandboxId: hex64() }).finish());
    case 'PodSandboxStatus':
      return Buffer.from(PodSandboxStatusRequest.encode({ podSandboxId: hex64(), verbose: true }).finish());
    case 'ListPodSandbox':
      return Buffer.from(ListPodSandboxRequest.encode(ListPodSandboxRequest.fromPartial({ filter: { id: 'ab', state: { state: 0 }, labelSelector: { app: 'x' } } })).finish());
    case 'UpdateRuntimeConfig':
      return Buffer.from(UpdateRuntimeConfigRequest.encode(UpdateRuntimeConfigRequest.fromPartial({ runtimeConfig: { networkConfig: { podCidr: '10.0.0.0/24' } } })).finish());
    default:
      return runBytes(
        podConfig({
          hostname: 'fuzz',
          portMappings: [{ containerPort: 80, hostPort: 0 }],
          dnsConfig: { servers: ['10.0.0.10'], searches: ['svc.local'] },
          annotations: { 'podnet.test/owner': 'e2e', 'kubernetes.io/ingress-bandwidth': '10M' },
          linux: { cgroupParent: '/kubepods/fuzz' },
        }),
      );
  }
}

/** A method by its RPC name. */
function method(name: string): MethodDef {
  const m = METHODS.find((x) => rpcName(x) === name);
  if (!m) throw new Error(`no method ${name}`);
  return m;
}

/** Sends a RunPodSandbox and returns its answer (creating the pod if it is valid). */
const run = (config: PodSandboxConfig, what: string, handler = ''): Promise<Answer> => callRaw(method('RunPodSandbox'), runBytes(config, handler), what);

/** Expects INVALID_ARGUMENT whose message matches, from a RunPodSandbox. */
async function expectRefused(config: PodSandboxConfig, message: RegExp, what: string): Promise<void> {
  const a = await run(config, what);
  expect({ what, code: status[a.code] }).toEqual({ what, code: 'INVALID_ARGUMENT' });
  expect(a.details, what).toMatch(message);
}

const withAnnotation = (value: string): PodSandboxConfig => podConfig({ annotations: { 'k8s.v1.cni.cncf.io/networks': value } });

// ---- the daemon ----------------------------------------------------------------------------------

let rssBefore = 0;

beforeAll(async () => {
  root = await newRoot();
  cluster = testNetwork(root);
  nadSubnet = uniqueSubnet();
  nadBridge = uniqueBridge();
  const nadDir = join(root, 'attachments.d');
  await mkdir(nadDir, { recursive: true });
  const nadConfig = {
    cniVersion: '1.0.0',
    name: 'pn-nad-constructor',
    plugins: [{ type: 'bridge', bridge: nadBridge, isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir: join(root, 'ipam'), ranges: [[{ subnet: nadSubnet.subnet }]] } }],
  };
  const nad = { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: NAD_NAME, namespace: 'e2e' }, spec: { config: JSON.stringify(nadConfig) } };
  await writeFile(join(nadDir, 'constructor.json'), JSON.stringify(nad));
  // A handler literally named "constructor" is declared; "toString" & co. are not.
  d = await startDaemon({ root, confFiles: { '10-e2e.conflist': cluster.text }, runtimes: { constructor: { cni_max_conf_num: 1 } }, top: { gc_interval: '1h' } });
  await normalCycle();
  rssBefore = await rssKiB(d.pid);
});

afterAll(async () => {
  await disposeAll();
});

describe('hostile input to every RuntimeService method', () => {
  it('1. undecodable protobuf: INVALID_ARGUMENT naming the method, logged like any RPC', async () => {
    // Field 1, length-delimited, claiming 127 bytes that are not there.
    const broken = Buffer.from([0x0a, 0x7f, 0x01]);
    for (const m of METHODS) {
      // Streams too: a stream's request is decoded before its handler runs, implemented or not.
      const a = await callRaw(m, broken, 'truncated LEN');
      expect({ rpc: a.rpc, code: status[a.code] }).toEqual({ rpc: a.rpc, code: 'INVALID_ARGUMENT' });
      expect(a.details).toMatch(new RegExp(`^${a.rpc}: the request is not a valid protobuf message`));
    }
    const logged = d.logs.filter((l) => l['rpc'] === 'RunPodSandbox' && l['outcome'] === 'INVALID_ARGUMENT' && String(l['err']).includes('not a valid protobuf message'));
    expect(logged.length).toBeGreaterThan(0);
    await afterClass();
  });

  it('2. huge values come back cut to a bounded quote, and the client always gets its answer', async () => {
    const huge = 'x'.repeat(MiB);
    const cases: Array<[string, DeepPartial<PodSandboxConfig>]> = [
      ['host_ip', { portMappings: [{ containerPort: 80, hostPort: 8080, hostIp: huge }] }],
      ['dns server', { dnsConfig: { servers: [huge] } }],
      ['label key', { labels: { [`${huge}\0`]: 'v' } }],
      ['hostname', { hostname: huge }],
      ['metadata name', { metadata: { name: `${huge};` } }],
      ['networks item', { annotations: { 'k8s.v1.cni.cncf.io/networks': `Bad_${'x'.repeat(60_000)}` } }],
      ['networks JSON', { annotations: { 'k8s.v1.cni.cncf.io/networks': JSON.stringify([{ name: 'x'.repeat(60_000) }]) } }],
      ['annotation', { annotations: { big: 'x'.repeat(300 * 1024) } }],
    ];
    await Promise.all(cases.map(([what, c]) => expectRefused(podConfig(c), /./, what)));
    await Promise.all([
      run(podConfig(), 'runtime handler', huge),
      callRaw(method('PodSandboxStatus'), Buffer.from(PodSandboxStatusRequest.encode({ podSandboxId: huge, verbose: true }).finish()), 'status id'),
      callRaw(method('StopPodSandbox'), Buffer.from(StopPodSandboxRequest.encode({ podSandboxId: huge }).finish()), 'stop id'),
      callRaw(method('ListPodSandbox'), Buffer.from(ListPodSandboxRequest.encode(ListPodSandboxRequest.fromPartial({ filter: { id: huge } })).finish()), 'filter id'),
      callRaw(method('UpdateRuntimeConfig'), Buffer.from(UpdateRuntimeConfigRequest.encode(UpdateRuntimeConfigRequest.fromPartial({ runtimeConfig: { networkConfig: { podCidr: huge } } })).finish()), 'pod cidr'),
    ]);
    for (const a of answers) {
      if (a.what === 'filter id') continue;
      expect({ what: a.what, code: status[a.code] }).toEqual({ what: a.what, code: 'INVALID_ARGUMENT' });
      expect(a.details.length, a.what).toBeLessThan(700);
    }
    // Every log line stays small too.
    expect(d.logs.filter((l) => JSON.stringify(l).length > 2 * MAX_DETAILS).map((l) => String(l['msg']))).toEqual([]);
    await afterClass();
  });

  it('3. prototype names are plain keys everywhere a client picks one', async () => {
    // Handlers: "constructor" is declared in the config, the others are not.
    const ok = await run(podConfig(), 'handler constructor', 'constructor');
    expect(status[ok.code], ok.details).toBe('OK');
    for (const h of ['__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      const a = await run(podConfig(), `handler ${h}`, h);
      expect({ h, code: status[a.code] }).toEqual({ h, code: 'INVALID_ARGUMENT' });
      expect(a.details).toContain('is not declared');
    }

    // Labels and annotations named like Object.prototype members are kept and matched as data.
    const named = { constructor: 'c', toString: 't', hasOwnProperty: 'h', app: 'proto' };
    const p1 = await d.rpc.run(podConfig({ labels: named, annotations: { constructor: 'c', toString: 't', hasOwnProperty: 'h' } }));
    const p2 = await d.rpc.run(podConfig({ labels: { app: 'proto' } }));
    const s1 = (await d.rpc.status(p1)).status;
    expect(s1?.labels).toMatchObject(named);
    expect(s1?.annotations).toMatchObject({ constructor: 'c', toString: 't', hasOwnProperty: 'h' });
    const ids = async (labelSelector: Record<string, string>): Promise<string[]> => (await d.rpc.list({ labelSelector })).map((p) => p.id).sort();
    for (const k of ['constructor', 'toString', 'hasOwnProperty'] as const) {
      expect(await ids({ [k]: named[k] }), k).toEqual([p1]);
      expect(await ids({ [k]: 'other' }), k).toEqual([]);
    }
    expect(await ids({ valueOf: 'x' })).toEqual([]);
    expect(await ids({ app: 'proto' })).toEqual([p1, p2].sort());
    // "__proto__" would vanish in decoding (and so match everything): it is refused instead.
    const protoMap = JSON.parse('{"__proto__": "x"}') as Record<string, string>;
    const list = await callRaw(method('ListPodSandbox'), Buffer.from(ListPodSandboxRequest.encode(ListPodSandboxRequest.fromPartial({ filter: {} })).finish()), 'noop');
    expect(list.code).toBe(status.OK);
    const filterBytes = Buffer.from(ListPodSandboxRequest.encode({ filter: { id: '', state: undefined, labelSelector: protoMap } }).finish());
    const sel = await callRaw(method('ListPodSandbox'), filterBytes, 'selector __proto__');
    expect(status[sel.code]).toBe('INVALID_ARGUMENT');
    expect(sel.details).toContain('filter.label_selector key "__proto__" is not allowed');
    for (const field of ['labels', 'annotations'] as const) {
      const cfg = podConfig();
      cfg[field] = JSON.parse('{"__proto__": "x"}') as Record<string, string>;
      const a = await run(cfg, `${field} __proto__`);
      expect(status[a.code]).toBe('INVALID_ARGUMENT');
      expect(a.details).toContain(`config.${field} key "__proto__" is not allowed`);
    }

    // NAD names and interface names: "constructor" is a NAD here; the others are not, and every
    // name works as an interface name and a cni-args key.
    const p3 = await d.rpc.run(withAnnotation(JSON.stringify([{ name: NAD_NAME, interface: 'toString', 'cni-args': Object.fromEntries(PROTO_NAMES.map((n) => [n, n])) }])));
    const status3 = JSON.parse((await d.rpc.status(p3, true)).info['info'] ?? '{}') as { 'network-status': Array<{ interface: string; ips: string[] }> };
    const side = status3['network-status'].find((n) => n.interface === 'toString');
    expect(side?.ips.every((ip) => inSubnet(ip, nadSubnet))).toBe(true);
    const p4 = await d.rpc.run(withAnnotation(JSON.stringify([{ name: NAD_NAME, interface: '__proto__' }, { name: NAD_NAME, interface: 'constructor' }])));
    const ifaces = (JSON.parse((await d.rpc.status(p4, true)).info['info'] ?? '{}') as { 'network-status': Array<{ interface: string }> })['network-status'].map((n) => n.interface);
    expect(ifaces.sort()).toEqual(['__proto__', 'constructor', 'eth0'].sort());
    for (const name of ['tostring', 'hasownproperty', '__proto__', 'toString']) {
      const a = await run(withAnnotation(name), `NAD ${name}`);
      expect({ name, code: status[a.code] }).toEqual({ name, code: 'INVALID_ARGUMENT' });
    }
    await afterClass();
  });

  it('4. the networks annotation is checked field by field before anything exists', async () => {
    const el = (extra: Record<string, unknown>): PodSandboxConfig => withAnnotation(JSON.stringify([{ name: NAD_NAME, ...extra }]));
    const cases: Array<[string, PodSandboxConfig, RegExp]> = [
      ['deep cni-args', withAnnotation(`[{"name":"${NAD_NAME}","cni-args":${'['.repeat(20_000)}${']'.repeat(20_000)}}]`), /nests deeper than/],
      ['deep portMappings', withAnnotation(`[{"name":"${NAD_NAME}","portMappings":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}]`), /nests deeper than/],
      ['hostPort "x"', el({ portMappings: [{ hostPort: 'x', containerPort: 80 }] }), /"portMappings\[0\]\.hostPort" of "constructor"/],
      ['hostPort 70000', el({ portMappings: [{ hostPort: 70000, containerPort: 80 }] }), /"portMappings\[0\]\.hostPort" of "constructor" must be an integer 1-65535, not 70000/],
      ['protocol', el({ portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'icmp' }] }), /"portMappings\[0\]\.protocol"/],
      ['default-route', el({ 'default-route': ['not-an-ip'] }), /"default-route\[0\]" of "constructor" "not-an-ip" is not an IP address/],
      ['default-route family', el({ ips: ['10.9.0.5/24'], 'default-route': ['fd00::1'] }), /is IPv6 but no address in "ips" is/],
      ['ips', el({ ips: ['10.0.0.0/0000000024'] }), /"ips\[0\]"/],
      ['timeout 0.0000001', el({ timeout: 0.0000001 }), /"timeout" of "constructor" must be from 1ms to 1h/],
      ['timeout 5000000', el({ timeout: 5_000_000 }), /"timeout" of "constructor" must be from 1ms to 1h/],
      ['cni-args nested', el({ 'cni-args': { a: { b: 'c' } } }), /"cni-args\.a" of "constructor" must be a string, number or boolean/],
      ['bandwidth', el({ bandwidth: { ingressRate: 'fast' } }), /"bandwidth\.ingressRate"/],
      ['mac', el({ mac: 'zz' }), /"mac" of "constructor" is not a MAC address/],
    ];
    await Promise.all(cases.map(([what, cfg, re]) => expectRefused(cfg, re, what)));
    // A timeout of 1.5 ms is within bounds (whole milliseconds): the pod runs or times out cleanly.
    const short = await run(el({ timeout: 0.0015 }), 'timeout 1.5ms');
    expect(DOCUMENTED.has(short.code) || short.code === status.DEADLINE_EXCEEDED, short.details).toBe(true);
    answers.splice(answers.indexOf(short), 1);
    await afterClass();
  });

  it('5. bandwidth quantities must be finite within 1k-1P', async () => {
    for (const q of ['0e400', '0.0e999', '1e999', '999', '2P', 'NaN', 'Infinity']) {
      await expectRefused(podConfig({ annotations: { 'kubernetes.io/ingress-bandwidth': q } }), /kubernetes\.io\/ingress-bandwidth/, `bandwidth ${q}`);
    }
    await afterClass();
  });

  it('6. hostname, namespace modes, pod_cidr and cgroup_parent are checked', async () => {
    await expectRefused(podConfig({ hostname: `a\0b${'x'.repeat(3 * MiB)}` }), /^config\.hostname .*…\(\d+ bytes\) is not a DNS-1123 subdomain/, 'hostname');
    await expectRefused(podConfig({ hostname: 'Not_A_Host' }), /config\.hostname/, 'hostname chars');
    await expectRefused(podConfig({ linux: { securityContext: { namespaceOptions: { network: 7 as NamespaceMode } } } }), /namespace_options\.network 7 is not a namespace mode/, 'ns mode');
    await expectRefused(podConfig({ linux: { cgroupParent: '/kubepods/../../sys/fs' } }), /cgroup_parent/, 'cgroup ..');
    for (const cidr of ['fe80::1%eth0/64', '10.0.0.0/0000000000024', ',,,', '10.0.0.0/24,10.1.0.0/24', '10.0.0.0']) {
      const err = await rpcError(d.rpc.updateRuntimeConfig(cidr));
      expect({ cidr, code: status[err.code] }).toEqual({ cidr, code: 'INVALID_ARGUMENT' });
      expect(err.details).toContain('pod_cidr');
    }
    await d.rpc.updateRuntimeConfig('10.0.0.0/24,fd00::/64');
    await afterClass();
  });

  it('7. random bytes to every method', async () => {
    const calls = METHODS.flatMap((m) => Array.from({ length: 12 }, (_, i) => ({ m, bytes: randomBytes(1 + randInt(i < 10 ? 64 : 4096)) })));
    await inBatches(calls, 16, (c) => callRaw(c.m, c.bytes, `random ${c.bytes.length}B`));
    await afterClass();
  });

  it('8. truncated and bit-flipped messages to every method', async () => {
    const calls: Array<{ m: MethodDef; bytes: Buffer; what: string }> = [];
    for (const m of METHODS) {
      const sample = sampleFor(m);
      for (let i = 0; i < 6; i++) {
        const at = 1 + randInt(Math.max(1, sample.length - 1));
        calls.push({ m, bytes: sample.subarray(0, at), what: `truncated at ${at}/${sample.length}` });
      }
      for (let i = 0; i < 6; i++) {
        const b = Buffer.from(sample);
        const flips = 1 + randInt(3);
        for (let f = 0; f < flips; f++) {
          const bit = randInt(b.length * 8);
          b[bit >> 3] ^= 1 << (bit & 7);
        }
        calls.push({ m, bytes: b, what: `${flips} bits flipped` });
      }
    }
    await inBatches(calls, 8, (c) => callRaw(c.m, c.bytes, c.what));
    await afterClass();
  });

  it('9. wrong wire types for the first fields of every method', async () => {
    const payload: Record<number, number[]> = { 0: [0x01], 1: [1, 2, 3, 4, 5, 6, 7, 8], 2: [0x01, 0x78], 5: [1, 2, 3, 4], 6: [0x01], 7: [0x01] };
    const calls: Array<{ m: MethodDef; bytes: Buffer; what: string }> = [];
    for (const m of METHODS) {
      for (const field of [1, 2, 3]) {
        for (let wt = 0; wt < 8; wt++) {
          const tag = (field << 3) | wt;
          const body = wt === 3 ? [((field << 3) | 4) & 0x7f] : wt === 4 ? [] : payload[wt];
          calls.push({ m, bytes: Buffer.from([tag, ...body]), what: `field ${field} wire type ${wt}` });
        }
      }
    }
    await inBatches(calls, 16, (c) => callRaw(c.m, c.bytes, c.what));
    await afterClass();
  });

  it('10. deep nesting: groups and length-delimited fields nested thousands deep', async () => {
    const depth = 20_000;
    const groups = Buffer.concat([Buffer.alloc(depth, 0x0b), Buffer.alloc(depth, 0x0c)]);
    // config(1) { metadata(1) { ... } }: each level a field-1 LEN wrapping the next.
    let nested: Buffer = Buffer.from([0x0a, 0x01, 0x61]);
    for (let i = 0; i < 2000; i++) {
      const len: number[] = [];
      let n = nested.length;
      while (n > 0x7f) {
        len.push((n & 0x7f) | 0x80);
        n >>>= 7;
      }
      len.push(n);
      nested = Buffer.concat([Buffer.from([0x0a, ...len]), nested]);
    }
    const calls = METHODS.flatMap((m) => [
      { m, bytes: groups, what: `groups ${depth} deep` },
      { m, bytes: nested, what: 'LEN 2000 deep' },
    ]);
    await inBatches(calls, 8, (c) => callRaw(c.m, c.bytes, c.what));
    await afterClass();
  });

  it('11. oversized messages', async () => {
    const overLimit = Buffer.concat([Buffer.from([0x0a]), Buffer.from([0x80, 0x80, 0x80, 0x09]), Buffer.alloc(17 * MiB, 0x61)]);
    const over = await callRaw(method('RunPodSandbox'), overLimit, '17 MiB');
    expect(status[over.code]).toBe('RESOURCE_EXHAUSTED');
    // Under the limit but huge: a 12 MiB label value, a 12 MiB selector key, 1 MiB of garbage to every method.
    await expectRefused(podConfig({ labels: { big: 'x'.repeat(12 * MiB) } }), /config\.labels are larger than/, '12 MiB label');
    const bigSel = await callRaw(method('ListPodSandbox'), Buffer.from(ListPodSandboxRequest.encode(ListPodSandboxRequest.fromPartial({ filter: { labelSelector: { ['k'.repeat(12 * MiB)]: 'v' } } })).finish()), '12 MiB selector');
    expect(bigSel.code).toBe(status.OK);
    await inBatches(METHODS, 4, (m) => callRaw(m, randomBytes(MiB), '1 MiB random'));
    await afterClass();
  });

  it('12. a few hundred concurrent calls, some of them real pods', async () => {
    const calls: Array<() => Promise<unknown>> = [];
    for (let i = 0; i < 120; i++) {
      const m = METHODS[randInt(METHODS.length)];
      const bytes = randomBytes(1 + randInt(256));
      calls.push(() => callRaw(m, bytes, 'concurrent random'));
    }
    for (let i = 0; i < 60; i++) calls.push(() => callRaw(method(['Version', 'Status', 'ListPodSandbox'][i % 3]), Buffer.alloc(0), 'concurrent valid'));
    for (let i = 0; i < 60; i++) calls.push(() => callRaw(method('PodSandboxStatus'), sampleFor(method('PodSandboxStatus')), 'concurrent status'));
    for (let i = 0; i < 50; i++) calls.push(() => run(podConfig(), 'concurrent bad', '__proto__'));
    for (let i = 0; i < 12; i++) calls.push(() => run(podConfig(), 'concurrent pod'));
    const results = await Promise.all(calls.map((c) => c()));
    expect(results.length).toBeGreaterThanOrEqual(300);
    const pods = answers.filter((a) => a.what === 'concurrent pod');
    expect(pods.map((a) => status[a.code])).toEqual(pods.map(() => 'OK'));
    expect((await d.rpc.list()).length).toBe(12);
    await afterClass();
  });

  it('13. the daemon is still up, with flat memory, and answers normally', async () => {
    expect(d.running).toBe(true);
    await normalCycle();
    const rssAfter = await rssKiB(d.pid);
    // Generous: 17 MiB messages were buffered; the heap may keep some of it, not a growth per call.
    expect(rssAfter - rssBefore, `RSS ${rssBefore} KiB before, ${rssAfter} KiB after`).toBeLessThan(200 * 1024);
    const serious = d.logs.filter((l) => l['level'] === 50 && l['component'] === 'grpc');
    expect(serious.map((l) => `${String(l['rpc'])}: ${String(l['err'])}`)).toEqual([]);
  });

  it('left no namespace mounts, bridges, processes or iptables rules behind', async () => {
    await expectNothingLeft();
  });
});

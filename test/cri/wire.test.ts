// Wire-compatibility of proto/runtime/v1/api.proto with a real CRI client.
//
// test/fixtures/crictl holds request messages exactly as crictl v1.32.0 put
// them on the wire (see its README.md). Decoding them with our generated types
// and finding every value of the pod-config JSON in the right place proves our
// field numbers and enum values match upstream's, one by one.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ListPodSandboxRequest,
  type MessageFns,
  NamespaceMode,
  PodSandboxConfig,
  PodSandboxState,
  PodSandboxStatusRequest,
  Protocol,
  RunPodSandboxRequest,
  StatusRequest,
  StopPodSandboxRequest,
  VersionRequest,
} from '../../src/gen/runtime/v1/api.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'crictl');
const SANDBOX_ID = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';

// Request decoder for each RPC that appears in a fixture file name.
// A fixture for an RPC missing here fails the "every file has a decoder" test.
const REQUEST_TYPES: Record<string, MessageFns<unknown>> = {
  Version: VersionRequest,
  RunPodSandbox: RunPodSandboxRequest,
  StopPodSandbox: StopPodSandboxRequest,
  PodSandboxStatus: PodSandboxStatusRequest,
  ListPodSandbox: ListPodSandboxRequest,
  Status: StatusRequest,
};

interface Fixture {
  /** Path relative to FIXTURES, e.g. "runp-full/002-RunPodSandbox.bin". */
  name: string;
  method: string;
  bytes: Uint8Array;
}

function loadFixtures(): Fixture[] {
  const out: Fixture[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) {
        walk(path);
        continue;
      }
      const m = /^\d{3}-([A-Za-z]+)\.bin$/.exec(entry);
      if (!m) continue;
      out.push({ name: relative(FIXTURES, path), method: m[1], bytes: new Uint8Array(readFileSync(path)) });
    }
  };
  walk(FIXTURES);
  return out;
}

const fixtures = loadFixtures();

function fixture(name: string): Uint8Array {
  const f = fixtures.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.bytes;
}

function podConfigJson(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(FIXTURES, 'pod-configs', name), 'utf8')) as Record<string, unknown>;
}

function decodeRunp(dir: string): RunPodSandboxRequest {
  return RunPodSandboxRequest.decode(fixture(`${dir}/002-RunPodSandbox.bin`));
}

const camel = (s: string): string => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

// protobuf map<string,string> fields: their JSON keys are data, not field names.
const MAP_FIELDS = new Set(['labels', 'annotations', 'sysctls', 'unified', 'label_selector']);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Walks snake_case `json` (crictl's pod-config format) and asserts each value
 * against the camelCase `decoded` message. Returns the path of every leaf it
 * checked, so callers can prove no field was skipped.
 */
function compareJsonToMessage(json: unknown, decoded: unknown, path = '$'): string[] {
  if (Array.isArray(json)) {
    expect(Array.isArray(decoded), `${path} is an array`).toBe(true);
    const arr = decoded as unknown[];
    expect(arr.length, `${path}.length`).toBe(json.length);
    return json.flatMap((item, i) => compareJsonToMessage(item, arr[i], `${path}[${i}]`));
  }
  if (isPlainObject(json)) {
    expect(isPlainObject(decoded), `${path} is a message`).toBe(true);
    const msg = decoded as Record<string, unknown>;
    const checked: string[] = [];
    for (const [key, value] of Object.entries(json)) {
      const field = camel(key);
      const sub = `${path}.${key}`;
      expect(Object.hasOwn(msg, field), `${sub} decoded as ${field}`).toBe(true);
      if (MAP_FIELDS.has(key)) {
        // Whole-map equality: same keys, same values, nothing extra.
        expect(msg[field], sub).toEqual(value);
        checked.push(...Object.keys(value as object).map((k) => `${sub}[${k}]`));
        if (Object.keys(value as object).length === 0) checked.push(sub);
      } else if (isPlainObject(value) && Object.keys(value).length === 0) {
        // An empty sub-message in the JSON must still be present after decoding.
        expect(msg[field], `${sub} present`).toBeDefined();
        checked.push(sub);
      } else {
        checked.push(...compareJsonToMessage(value, msg[field], sub));
      }
    }
    return checked;
  }
  expect(decoded, path).toStrictEqual(json);
  return [path];
}

/** Leaf paths of a JSON value, counted the way compareJsonToMessage records them. */
function jsonLeaves(json: unknown, path = '$', isMap = false): string[] {
  if (Array.isArray(json)) return json.flatMap((v, i) => jsonLeaves(v, `${path}[${i}]`));
  if (isPlainObject(json)) {
    const entries = Object.entries(json);
    if (entries.length === 0) return [path];
    if (isMap) return entries.map(([k]) => `${path}[${k}]`);
    return entries.flatMap(([k, v]) => jsonLeaves(v, `${path}.${k}`, MAP_FIELDS.has(k)));
  }
  return [path];
}

/** snake_case JSON -> camelCase object (map keys untouched), for fromPartial. */
function camelizeJson(json: unknown, isMap = false): unknown {
  if (Array.isArray(json)) return json.map((v) => camelizeJson(v));
  if (!isPlainObject(json)) return json;
  if (isMap) return { ...json };
  return Object.fromEntries(Object.entries(json).map(([k, v]) => [camel(k), camelizeJson(v, MAP_FIELDS.has(k))]));
}

function checkAgainstPodConfig(dir: string, configFile: string): RunPodSandboxRequest {
  const req = decodeRunp(dir);
  const json = podConfigJson(configFile);
  expect(req.config).toBeDefined();
  const checked = compareJsonToMessage(json, req.config);
  expect(checked.sort()).toEqual(jsonLeaves(json).sort());
  // And the other way round: nothing decoded that the JSON does not say.
  expect(req.config).toEqual(PodSandboxConfig.fromPartial(camelizeJson(json) as Parameters<typeof PodSandboxConfig.fromPartial>[0]));
  return req;
}

describe('crictl fixtures', () => {
  it('are all present', () => {
    const dirs = new Set(fixtures.map((f) => f.name.split('/')[0]));
    expect([...dirs].sort()).toEqual(
      [
        'info', 'inspectp', 'pods', 'pods-filtered', 'pods-id', 'rmp', 'rmp-force',
        'runp-basic', 'runp-full', 'runp-handler', 'runp-hostnet', 'stopp', 'version',
      ].sort(),
    );
    expect(fixtures.length).toBe(26);
  });

  it('every file has a request decoder for its method', () => {
    for (const f of fixtures) expect(REQUEST_TYPES[f.method], f.name).toBeDefined();
  });

  describe.each(fixtures.map((f) => [f.name, f] as const))('%s', (_name, f) => {
    const type = REQUEST_TYPES[f.method];

    it('decodes', () => {
      expect(() => type.decode(f.bytes)).not.toThrow();
    });

    it('round-trips: decode(encode(decode(bytes))) equals decode(bytes)', () => {
      const msg = type.decode(f.bytes);
      const again = type.decode(type.encode(msg).finish());
      expect(again).toEqual(msg);
    });

    it('re-encodes to the identical bytes', () => {
      // Holds for these fixtures: ts-proto keeps map insertion order from decode,
      // writes present-but-empty sub-messages, and omits default scalars, as Go does.
      const msg = type.decode(f.bytes);
      expect(Buffer.from(type.encode(msg).finish()).toString('hex')).toBe(Buffer.from(f.bytes).toString('hex'));
    });
  });
});

describe('Version', () => {
  it('is empty on every command but `crictl version`', () => {
    for (const f of fixtures.filter((x) => x.name.endsWith('001-Version.bin'))) {
      expect(f.bytes.length, f.name).toBe(0);
      expect(VersionRequest.decode(f.bytes), f.name).toEqual({ version: '' });
    }
  });

  it('carries version "v1" on `crictl version`', () => {
    const bytes = fixture('version/002-Version.bin');
    expect([...bytes]).toEqual([0x0a, 0x02, 0x76, 0x31]); // field 1, LEN, "v1"
    expect(VersionRequest.decode(bytes)).toEqual({ version: 'v1' });
  });
});

describe('Status', () => {
  it('`crictl info` asks verbose', () => {
    const bytes = fixture('info/002-Status.bin');
    expect([...bytes]).toEqual([0x08, 0x01]); // field 1, VARINT, true
    expect(StatusRequest.decode(bytes)).toEqual({ verbose: true });
  });
});

describe('RunPodSandbox', () => {
  it('runp-basic matches pod-configs/basic.json field by field', () => {
    const req = checkAgainstPodConfig('runp-basic', 'basic.json');
    const c = req.config!;
    expect(req.runtimeHandler).toBe('');
    expect(c.metadata).toEqual({
      name: 'web-0',
      namespace: 'default',
      uid: '6f1c2f3e-0d8a-4a51-9a0e-1b2c3d4e5f60',
      attempt: 1,
    });
    expect(c.logDirectory).toBe('/var/log/pods/default_web-0_6f1c2f3e-0d8a-4a51-9a0e-1b2c3d4e5f60');
    expect(c.hostname).toBe('');
    expect(c.dnsConfig).toBeUndefined();
    expect(c.portMappings).toEqual([]);
    // "linux": {} is sent as an empty message, so it is present with defaults.
    expect(c.linux).toBeDefined();
    expect(c.linux!.cgroupParent).toBe('');
    expect(c.linux!.securityContext).toBeUndefined();
  });

  it('runp-full matches pod-configs/full.json field by field', () => {
    const req = checkAgainstPodConfig('runp-full', 'full.json');
    const c = req.config!;
    expect(c.metadata).toEqual({
      name: 'api-7d9f8',
      namespace: 'shop',
      uid: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
      attempt: 2,
    });
    expect(c.hostname).toBe('api-7d9f8');
    expect(c.logDirectory).toBe('/var/log/pods/shop_api-7d9f8_0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d');
    expect(c.dnsConfig).toEqual({
      servers: ['10.96.0.10'],
      searches: ['shop.svc.cluster.local', 'svc.cluster.local'],
      options: ['ndots:5'],
    });
    expect(c.portMappings).toEqual([
      { protocol: Protocol.TCP, containerPort: 8080, hostPort: 18080, hostIp: '127.0.0.1' },
      { protocol: Protocol.UDP, containerPort: 5353, hostPort: 15353, hostIp: '' },
      { protocol: Protocol.SCTP, containerPort: 9000, hostPort: 19000, hostIp: '' },
    ]);
    expect(c.labels).toEqual({ app: 'api', tier: 'backend', 'io.kubernetes.pod.name': 'api-7d9f8' });
    expect(c.annotations).toEqual({
      'kubernetes.io/ingress-bandwidth': '10M',
      'kubernetes.io/egress-bandwidth': '1G',
      'k8s.v1.cni.cncf.io/networks': 'macvlan-conf@net1, shop/storage-net',
    });
    expect(c.linux!.cgroupParent).toBe('/kubepods/burstable/pod0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d');
    const ns = c.linux!.securityContext!.namespaceOptions!;
    expect(ns.network).toBe(NamespaceMode.POD);
    expect(ns.pid).toBe(NamespaceMode.CONTAINER);
    expect(ns.ipc).toBe(NamespaceMode.POD);
    expect(req.runtimeHandler).toBe('');
  });

  it('runp-handler is basic.json plus runtime_handler "fast-net"', () => {
    const req = checkAgainstPodConfig('runp-handler', 'basic.json');
    expect(req.runtimeHandler).toBe('fast-net');
    expect(req.config).toEqual(decodeRunp('runp-basic').config);
  });

  it('runp-hostnet matches pod-configs/hostnet.json and asks for the NODE network namespace', () => {
    const req = checkAgainstPodConfig('runp-hostnet', 'hostnet.json');
    const c = req.config!;
    expect(c.metadata).toEqual({
      name: 'node-exporter-x2k',
      namespace: 'monitoring',
      uid: '11111111-2222-4333-8444-555555555555',
      attempt: 0,
    });
    expect(c.hostname).toBe('');
    expect(c.logDirectory).toBe('');
    const ns = c.linux!.securityContext!.namespaceOptions!;
    expect(ns.network).toBe(NamespaceMode.NODE);
    expect(ns.pid).toBe(NamespaceMode.NODE);
    expect(ns.ipc).toBe(NamespaceMode.NODE);
  });

  it('field numbers are visible in the raw bytes', () => {
    // RunPodSandboxRequest.config = 1 (LEN) -> tag 0x0a; PodSandboxConfig.metadata = 1 -> 0x0a;
    // PodSandboxMetadata.name = 1 -> 0x0a.
    const basic = fixture('runp-basic/002-RunPodSandbox.bin');
    expect(basic[0]).toBe(0x0a);
    expect(basic[2]).toBe(0x0a);
    expect(basic[4]).toBe(0x0a);
    // runtime_handler = 2 (LEN) -> tag 0x12, the last field: 0x12, len 8, "fast-net".
    const handler = fixture('runp-handler/002-RunPodSandbox.bin');
    expect([...handler.subarray(handler.length - 10)]).toEqual([
      0x12, 0x08, ...Buffer.from('fast-net', 'latin1'),
    ]);
    // Without a handler the request is exactly the config field.
    expect(handler.subarray(0, basic.length)).toEqual(basic);
    expect(basic.length).toBe(2 + basic[1]);
    // PodSandboxMetadata: uid is field 2 (0x12), namespace is field 3 (0x1a), attempt field 4 (0x20).
    const meta = Buffer.from(basic.subarray(4, 4 + basic[3]));
    expect(meta.indexOf(Buffer.from([0x12, 36]))).toBeGreaterThan(0);
    expect(meta.indexOf(Buffer.from([0x1a, 7, ...Buffer.from('default')]))).toBeGreaterThan(0);
    expect([...meta.subarray(meta.length - 2)]).toEqual([0x20, 0x01]);
    // PodSandboxConfig.linux = 8 (LEN) -> 0x42, sent empty for "linux": {}.
    expect([...basic.subarray(basic.length - 2)]).toEqual([0x42, 0x00]);
  });
});

describe('PodSandboxStatus', () => {
  it('inspectp asks for the sandbox verbosely', () => {
    const bytes = fixture('inspectp/002-PodSandboxStatus.bin');
    expect(PodSandboxStatusRequest.decode(bytes)).toEqual({ podSandboxId: SANDBOX_ID, verbose: true });
    expect([...bytes.subarray(0, 2)]).toEqual([0x0a, 64]); // pod_sandbox_id = 1
    expect([...bytes.subarray(66)]).toEqual([0x10, 0x01]); // verbose = 2
  });

  it.each(['rmp', 'rmp-force'])('%s asks for the sandbox (verbose is not set on the wire)', (dir) => {
    const bytes = fixture(`${dir}/002-PodSandboxStatus.bin`);
    expect(bytes.length).toBe(66);
    expect(PodSandboxStatusRequest.decode(bytes)).toEqual({ podSandboxId: SANDBOX_ID, verbose: false });
  });
});

describe('StopPodSandbox', () => {
  it('stopp carries the sandbox id', () => {
    const bytes = fixture('stopp/002-StopPodSandbox.bin');
    expect(StopPodSandboxRequest.decode(bytes)).toEqual({ podSandboxId: SANDBOX_ID });
    expect([...bytes.subarray(0, 2)]).toEqual([0x0a, 64]);
  });
});

describe('ListPodSandbox', () => {
  it('pods sends an empty filter', () => {
    const bytes = fixture('pods/002-ListPodSandbox.bin');
    expect([...bytes]).toEqual([0x0a, 0x00]);
    const req = ListPodSandboxRequest.decode(bytes);
    expect(req.filter).toEqual({ id: '', state: undefined, labelSelector: {} });
  });

  it('pods --id filters on id', () => {
    const req = ListPodSandboxRequest.decode(fixture('pods-id/002-ListPodSandbox.bin'));
    expect(req.filter).toEqual({ id: '0123456789ab', state: undefined, labelSelector: {} });
  });

  it('pods --state ready --label ... sends the labels and an empty (READY) state', () => {
    const bytes = fixture('pods-filtered/002-ListPodSandbox.bin');
    const req = ListPodSandboxRequest.decode(bytes);
    const filter = req.filter!;
    expect(filter.id).toBe('');
    expect(filter.labelSelector).toEqual({ app: 'web', tier: 'backend' });
    // READY is 0, so the wrapper arrives as an empty message (tag 0x12, length 0):
    // its presence is the only thing telling "filter on READY" from "no filter".
    expect([...bytes.subarray(2, 4)]).toEqual([0x12, 0x00]);
    expect(filter.state).toBeDefined();
    expect(filter.state).toEqual({ state: PodSandboxState.SANDBOX_READY });
    expect(filter.state!.state).toBe(0);
    // --name/--namespace are filtered client-side: nothing else is in the request.
    expect(Object.keys(filter).sort()).toEqual(['id', 'labelSelector', 'state']);
  });
});

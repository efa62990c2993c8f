// Input checks that need no daemon: the bounded quote, quantities, the pod config's fields, and
// the networks annotation's JSON form field by field.
import { describe, expect, it } from 'vitest';
import { NETWORKS_ANNOTATION, parseNetworksAnnotation } from '../../src/engine/attachments.js';
import { parseConfig } from '../../src/cri/config.js';
import { parseQuantity } from '../../src/util/quantity.js';
import { clip, quote, QUOTE_LIMIT } from '../../src/util/quote.js';
import { toBandwidth, validatePodConfig } from '../../src/cri/validate.js';
import { ipFamily } from '../../src/util/ip.js';
import { NamespaceMode, PodSandboxConfig, type DeepPartial } from '../../src/gen/runtime/v1/api.js';
import { invalidArgumentMessage } from '../helpers/refusal.js';

const refusal = invalidArgumentMessage;

function pod(overrides: DeepPartial<PodSandboxConfig> = {}): PodSandboxConfig {
  const { metadata, ...rest } = overrides;
  return PodSandboxConfig.fromPartial({ ...rest, metadata: { name: 'p', namespace: 'ns', uid: 'u', attempt: 0, ...metadata } });
}

const HUGE = 'x'.repeat(1024 * 1024);

describe('quote and clip', () => {
  it('keeps short values whole and cuts long ones, saying how big they were', () => {
    expect(clip('abc')).toBe('abc');
    expect(quote('a"b\n\0')).toBe('"a\\"b\\n\\u0000"');
    const q = quote(HUGE);
    expect(q).toBe(`"${'x'.repeat(QUOTE_LIMIT)}"…(${HUGE.length} bytes)`);
    expect(clip('é'.repeat(200))).toBe(`${'é'.repeat(QUOTE_LIMIT)}…(400 bytes)`);
    expect(quote(70000)).toBe('70000');
    expect(quote({ a: 1 })).toBe('an object');
    expect(quote([1, 2])).toBe('a list of 2');
  });
});

describe('parseQuantity', () => {
  it('parses Kubernetes quantities', () => {
    expect(parseQuantity('10M')).toBe(10_000_000);
    expect(parseQuantity('1Gi')).toBe(2 ** 30);
    expect(parseQuantity('1e6')).toBe(1_000_000);
    expect(parseQuantity('1.5k')).toBe(1500);
  });

  it('refuses what is not a finite number', () => {
    for (const q of ['0e400', '0.0e999', '1e999', '9'.repeat(400), 'x', '', '1Z']) expect(parseQuantity(q), q).toBeUndefined();
  });

  it('refuses bandwidth outside 1k-1P, and NaN-producing values, as INVALID_ARGUMENT', () => {
    for (const q of ['0e400', '0.0e999', '999', '2P', '1e999']) {
      const msg = refusal(() => toBandwidth({ 'kubernetes.io/ingress-bandwidth': q }));
      expect(msg, q).toContain('kubernetes.io/ingress-bandwidth');
    }
    expect(toBandwidth({ 'kubernetes.io/egress-bandwidth': '1M' })).toEqual({ egressRate: 1_000_000, egressBurst: 2 ** 32 - 1 });
  });
});

describe('validatePodConfig', () => {
  it('accepts a plain pod', () => {
    expect(validatePodConfig(pod({ hostname: 'web-0.example' })).metadata.name).toBe('p');
  });

  it('checks the hostname as the kubelet does', () => {
    for (const hostname of ['UPPER', 'a\0b', 'a b', '-x', `${'a'.repeat(63)}.`.repeat(5), 'x'.repeat(3 * 1024 * 1024)]) {
      const msg = refusal(() => validatePodConfig(pod({ hostname })));
      expect(msg).toMatch(/^config\.hostname /);
      expect(msg.length).toBeLessThan(400);
    }
  });

  it('refuses a namespace mode outside the enum', () => {
    for (const network of [-1, 4, 99]) {
      const msg = refusal(() => validatePodConfig(pod({ linux: { securityContext: { namespaceOptions: { network: network as NamespaceMode } } } })));
      expect(msg).toContain('namespace_options.network');
    }
  });

  it('refuses a cgroup_parent with ".." components', () => {
    for (const cgroupParent of ['/kubepods/../../etc', '..', 'a/..', '/a/../b']) {
      expect(refusal(() => validatePodConfig(pod({ linux: { cgroupParent } })))).toContain('config.linux.cgroup_parent');
    }
    expect(validatePodConfig(pod({ linux: { cgroupParent: '/kubepods/pod..x' } })).cgroupParent).toBe('/kubepods/pod..x');
  });

  it('never echoes more than a bounded piece of a huge value', () => {
    const cases: Array<DeepPartial<PodSandboxConfig>> = [
      { portMappings: [{ containerPort: 80, hostPort: 8080, hostIp: HUGE }] },
      { dnsConfig: { servers: [HUGE] } },
      { dnsConfig: { searches: [`${HUGE}\n`] } },
      { metadata: { name: `${HUGE};` } },
      { labels: { [`${HUGE}\0`]: 'v' } },
      { hostname: HUGE },
      { linux: { cgroupParent: `${HUGE}/..` } },
      { annotations: { 'kubernetes.io/ingress-bandwidth': 'x'.repeat(200_000) } },
    ];
    for (const c of cases) {
      const msg = refusal(() => validatePodConfig(pod(c)));
      expect(msg.length, msg.slice(0, 80)).toBeLessThan(500);
      expect(msg).toMatch(/…\(\d+ bytes\)/);
    }
  });
});

describe('ipFamily', () => {
  it('parses IPs and CIDRs strictly', () => {
    expect(ipFamily('10.0.0.0/24', true)).toBe(4);
    expect(ipFamily('fd00::/64', true)).toBe(6);
    expect(ipFamily('10.0.0.1', false)).toBe(4);
    for (const bad of ['fe80::1%eth0/64', '10.0.0.0/0000000000024', '10.0.0.0/33', '::/129', '', ',', '10.0.0.0/', '10.0.0.0/+1', 'fe80::1%eth0']) {
      expect(ipFamily(bad, true), bad).toBeUndefined();
    }
    expect(ipFamily('10.0.0.0/24', false)).toBeUndefined();
  });
});

describe('the networks annotation, field by field', () => {
  const item = (extra: Record<string, unknown>): string => JSON.stringify([{ name: 'a-net', ...extra }]);
  const bad = (extra: Record<string, unknown>): string => refusal(() => parseNetworksAnnotation(item(extra), 'pods'));
  const prefix = `annotation ${NETWORKS_ANNOTATION}: `;

  it('checks port mappings as the pod\'s own', () => {
    expect(bad({ portMappings: [{ hostPort: 'x', containerPort: 80 }] })).toBe(`${prefix}"portMappings[0].hostPort" of "a-net" must be an integer 1-65535, not "x"`);
    expect(bad({ portMappings: [{ hostPort: 70000, containerPort: 80 }] })).toContain('"portMappings[0].hostPort" of "a-net" must be an integer 1-65535, not 70000');
    expect(bad({ portMappings: [{ hostPort: 80, containerPort: 0 }] })).toContain('"portMappings[0].containerPort"');
    expect(bad({ portMappings: [{ hostPort: 80, containerPort: 80.5 }] })).toContain('"portMappings[0].containerPort"');
    expect(bad({ portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'icmp' }] })).toContain('"portMappings[0].protocol"');
    expect(bad({ portMappings: [{ hostPort: 80, containerPort: 80, hostIP: 'nope' }] })).toContain('"portMappings[0].hostIP"');
    expect(bad({ portMappings: ['80:80'] })).toContain('"portMappings[0]" of "a-net" must be an object');
    expect(parseNetworksAnnotation(item({ portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'UDP', hostIP: '127.0.0.1', extra: 1 }] }), 'pods')[0]?.portMappings).toEqual([
      { hostPort: 80, containerPort: 8080, protocol: 'udp', hostIP: '127.0.0.1' },
    ]);
  });

  it('checks IPs, default-route gateways and their family', () => {
    expect(bad({ ips: ['not-an-ip'] })).toContain('"ips[0]" of "a-net"');
    expect(bad({ ips: ['10.0.0.1/99'] })).toContain('"ips[0]"');
    expect(bad({ 'default-route': ['not-an-ip'] })).toContain('"default-route[0]" of "a-net" "not-an-ip" is not an IP address');
    expect(bad({ 'default-route': ['10.0.0.1/24'] })).toContain('"default-route[0]"');
    expect(bad({ 'default-route': ['10.0.0.1', '10.0.0.2'] })).toContain('is a second IPv4 gateway');
    expect(bad({ ips: ['10.0.0.5/24'], 'default-route': ['fd00::1'] })).toContain('"default-route[0]" of "a-net" "fd00::1" is IPv6 but no address in "ips" is');
    expect(parseNetworksAnnotation(item({ ips: ['10.0.0.5/24', 'fd00::5/64'], 'default-route': ['10.0.0.1', 'fd00::1'] }), 'pods')[0]?.defaultRoute).toEqual(['10.0.0.1', 'fd00::1']);
  });

  it('keeps timeouts within 1ms-1h', () => {
    expect(bad({ timeout: 5_000_000 })).toBe(`${prefix}"timeout" of "a-net" must be from 1ms to 1h, not 5000000`);
    expect(bad({ timeout: '2h' })).toContain('must be from 1ms to 1h');
    expect(bad({ timeout: 1e308 })).toContain('"timeout"');
    expect(bad({ timeout: 0.0000001 })).toContain('must be from 1ms to 1h');
    expect(parseNetworksAnnotation(item({ timeout: 0.0015 }), 'pods')[0]?.timeoutMs).toBe(2);
    expect(parseNetworksAnnotation(item({ timeout: '1h' }), 'pods')[0]?.timeoutMs).toBe(3_600_000);
  });

  it('takes cni-args only as a flat object of strings, numbers and booleans', () => {
    expect(bad({ 'cni-args': { a: { b: 1 } } })).toBe(`${prefix}"cni-args.a" of "a-net" must be a string, number or boolean`);
    expect(bad({ 'cni-args': { a: [1] } })).toContain('"cni-args.a"');
    expect(bad({ 'cni-args': { a: null } })).toContain('"cni-args.a"');
    expect(bad({ 'cni-args': { a: 'x;IP=10.0.0.9' } })).toContain('"cni-args.a" of "a-net" is not a CNI_ARGS pair');
    expect(parseNetworksAnnotation(item({ 'cni-args': { s: 'v', n: 3, b: true } }), 'pods')[0]?.cniArgs).toEqual([
      ['s', 'v'],
      ['n', '3'],
      ['b', 'true'],
    ]);
  });

  it('checks bandwidth by name, type and range', () => {
    expect(bad({ bandwidth: { ingressRate: 'fast' } })).toContain('"bandwidth.ingressRate" of "a-net" must be an integer 1000-1000000000000000');
    expect(bad({ bandwidth: { ingressRate: 1 } })).toContain('"bandwidth.ingressRate"');
    expect(bad({ bandwidth: { egressBurst: -1 } })).toContain('"bandwidth.egressBurst"');
    expect(bad({ bandwidth: { rate: 1000 } })).toContain('"bandwidth.rate" of "a-net" is not one of');
  });

  it('bounds the depth and size of the whole annotation before parsing it', () => {
    // 20,000 deep stays under the size bound, so the depth bound is what refuses it.
    const deep = `[{"name":"a-net","cni-args":${'['.repeat(20_000)}${']'.repeat(20_000)}}]`;
    expect(refusal(() => parseNetworksAnnotation(deep, 'pods'))).toBe(`${prefix}the JSON form nests deeper than 4 levels`);
    const deepPorts = `[{"name":"a-net","portMappings":${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}}]`;
    expect(refusal(() => parseNetworksAnnotation(deepPorts, 'pods'))).toContain('nests deeper');
    // Brackets inside strings do not count.
    expect(parseNetworksAnnotation(item({ 'cni-args': { a: '[[[[[[[[' } }), 'pods')).toHaveLength(1);
    expect(refusal(() => parseNetworksAnnotation(item({ 'cni-args': { a: HUGE } }), 'pods'))).toContain('is larger than 65536 bytes');
    const many = JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ name: `n${i}` })));
    expect(refusal(() => parseNetworksAnnotation(many, 'pods'))).toBe(`${prefix}more than 32 networks`);
  });

  it('quotes a bounded piece of anything it refuses', () => {
    const long = 'x'.repeat(60_000);
    for (const value of [long, `a/${long}`, `a@${long}`, JSON.stringify([{ name: long }]), JSON.stringify([{ name: 'a', 'default-route': [long] }])]) {
      const msg = refusal(() => parseNetworksAnnotation(value, 'pods'));
      expect(msg.length, msg.slice(0, 100)).toBeLessThan(600);
    }
  });

  it('takes prototype names as plain names and keys', () => {
    for (const name of ['constructor', '__proto__', 'tostring', 'hasownproperty']) {
      const sel = parseNetworksAnnotation(JSON.stringify([{ name: 'a-net', interface: name.slice(0, 15), 'cni-args': { [name]: name } }]), 'pods')[0];
      expect(sel.interface).toBe(name.slice(0, 15));
      expect(sel.cniArgs).toEqual([[name, name]]);
    }
    // A "__proto__" key in the element (JSON.parse makes it an own key) is ignored, not a prototype.
    expect(parseNetworksAnnotation('[{"name":"a-net","__proto__":{"timeout":9999999}}]', 'pods')[0]).toEqual({ name: 'a-net', namespace: 'pods', source: 'pods/a-net' });
    expect(refusal(() => parseNetworksAnnotation('[{"__proto__":{"name":"a-net"}}]', 'pods'))).toBe(`${prefix}item 0 has no "name"`);
  });
});

describe('config keys named like prototype properties', () => {
  it('are runtime handlers like any other, and undeclared ones stay undeclared', () => {
    const cfg = parseConfig('[runtimes.constructor]\ncni_max_conf_num = 2\n[runtimes.__proto__]\ncni_max_conf_num = 3\n');
    expect(Object.keys(cfg.runtimes).sort()).toEqual(['__proto__', 'constructor']);
    expect(Object.hasOwn(cfg.runtimes, '__proto__')).toBe(true);
    expect(cfg.runtimes['__proto__']?.cniMaxConfNum).toBe(3);
    expect(Object.hasOwn(cfg.runtimes, 'toString')).toBe(false);
    expect(Object.hasOwn(parseConfig('').runtimes, 'constructor')).toBe(false);
    expect(() => parseConfig('constructor = 1\n')).toThrow('unknown config key "constructor"');
    expect(() => parseConfig('[cni]\n__proto__ = 1\n')).toThrow('unknown config key "cni.__proto__"');
  });
});

import { describe, it, expect } from 'vitest';
import {
  convertResult,
  isCurrent,
  isResult020,
  isResult040,
  parseResult,
  ResultError,
  resultIPs,
  toCurrent,
  type AnyResult,
  type Result,
  type Result020,
  type Result040,
} from '../../src/cni/result.js';
import { SUPPORTED_VERSIONS } from '../../src/cni/version.js';

type Shape = 'current' | '040' | '020';
const shapeOf = (v: string): Shape => (v.startsWith('1.') ? 'current' : v === '0.1.0' || v === '0.2.0' ? '020' : '040');

function expectResultError(fn: () => unknown, message: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(ResultError);
  expect((thrown as Error).message).toBe(message);
}

/** Every object and array reachable from v. */
function objectsIn(v: unknown, acc = new Set<object>()): Set<object> {
  if (typeof v === 'object' && v !== null && !acc.has(v)) {
    acc.add(v);
    for (const child of Object.values(v)) objectsIn(child, acc);
  }
  return acc;
}

const withVersion = <T extends AnyResult>(r: T, cniVersion: string): T => ({ ...structuredClone(r), cniVersion });

// ---------------------------------------------------------------------------------------------
// Dual-stack sample, in each shape, as libcni would produce it.

const dnsFull = {
  nameservers: ['10.96.0.10', 'fd00:96::a'],
  domain: 'cluster.local',
  search: ['default.svc.cluster.local', 'svc.cluster.local'],
  options: ['ndots:5'],
};

/** Native 1.x: interface extras, two IPs per family, route extras. */
const dualC: Result = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'cni0', mac: '0a:58:0a:01:00:01', mtu: 1500 },
    { name: 'veth1234', mac: '0a:58:0a:01:00:02' },
    { name: 'eth0', mac: '0a:58:0a:01:00:05', mtu: 1450, sandbox: '/var/run/netns/pod1', socketPath: '/run/vhost/eth0.sock', pciID: '0000:03:00.1' },
  ],
  ips: [
    { interface: 2, address: '10.1.0.5/24', gateway: '10.1.0.1' },
    { interface: 2, address: 'fd00:10:1::5/64', gateway: 'fd00:10:1::1' },
    { interface: 2, address: '10.2.0.5/16' },
    { interface: 2, address: 'fd00:10:2::5/64' },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400, advmss: 1360, priority: 100, table: 100, scope: 0 },
    { dst: '::/0', gw: 'fd00:10:1::1' },
    { dst: '10.96.0.0/12' },
    { dst: 'fd00:96::/108', priority: 5, scope: 253 },
  ],
  dns: dnsFull,
};

/** dualC as 0.4.0: interfaces lose mtu/socketPath/pciID, ips gain version, routes keep everything. */
const dualF: Result040 = {
  cniVersion: '0.4.0',
  interfaces: [
    { name: 'cni0', mac: '0a:58:0a:01:00:01' },
    { name: 'veth1234', mac: '0a:58:0a:01:00:02' },
    { name: 'eth0', mac: '0a:58:0a:01:00:05', sandbox: '/var/run/netns/pod1' },
  ],
  ips: [
    { version: '4', interface: 2, address: '10.1.0.5/24', gateway: '10.1.0.1' },
    { version: '6', interface: 2, address: 'fd00:10:1::5/64', gateway: 'fd00:10:1::1' },
    { version: '4', interface: 2, address: '10.2.0.5/16' },
    { version: '6', interface: 2, address: 'fd00:10:2::5/64' },
  ],
  routes: dualC.routes!,
  dns: dnsFull,
};

/** dualF back in the 1.x shape. */
const dualCF: Result = {
  cniVersion: '1.1.0',
  interfaces: dualF.interfaces!,
  ips: dualC.ips!,
  routes: dualC.routes!,
  dns: dnsFull,
};

/** dualC/dualF as 0.2.0: first IP per family, routes by dst family as dst/gw only. */
const dualT: Result020 = {
  cniVersion: '0.2.0',
  ip4: {
    ip: '10.1.0.5/24',
    gateway: '10.1.0.1',
    routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '10.96.0.0/12' }],
  },
  ip6: {
    ip: 'fd00:10:1::5/64',
    gateway: 'fd00:10:1::1',
    routes: [{ dst: '::/0', gw: 'fd00:10:1::1' }, { dst: 'fd00:96::/108' }],
  },
  dns: dnsFull,
};

/** dualT as 0.4.0: ip4 then ip6, routes flattened v4 first. */
const dualTF: Result040 = {
  cniVersion: '0.4.0',
  ips: [
    { version: '4', address: '10.1.0.5/24', gateway: '10.1.0.1' },
    { version: '6', address: 'fd00:10:1::5/64', gateway: 'fd00:10:1::1' },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '10.96.0.0/12' }, { dst: '::/0', gw: 'fd00:10:1::1' }, { dst: 'fd00:96::/108' }],
  dns: dnsFull,
};

const dualTC: Result = {
  cniVersion: '1.1.0',
  ips: [
    { address: '10.1.0.5/24', gateway: '10.1.0.1' },
    { address: 'fd00:10:1::5/64', gateway: 'fd00:10:1::1' },
  ],
  routes: dualTF.routes!,
  dns: dnsFull,
};

// ---------------------------------------------------------------------------------------------
// Single-stack IPv6 sample: no dns, no ip4, and an IPv4 route that 0.2.0 cannot hold.

const singleC: Result = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0', mac: '02:42:ac:11:00:02', sandbox: '/var/run/netns/pod2' }],
  ips: [{ interface: 0, address: '2001:db8:1::20/64', gateway: '2001:db8:1::1' }],
  routes: [{ dst: '::/0', mtu: 1280 }, { dst: '192.0.2.0/24', gw: '192.0.2.1' }],
};
const singleF: Result040 = {
  cniVersion: '0.4.0',
  interfaces: singleC.interfaces!,
  ips: [{ version: '6', interface: 0, address: '2001:db8:1::20/64', gateway: '2001:db8:1::1' }],
  routes: singleC.routes!,
};
const singleCF: Result = singleC;
const singleT: Result020 = {
  cniVersion: '0.2.0',
  ip6: { ip: '2001:db8:1::20/64', gateway: '2001:db8:1::1', routes: [{ dst: '::/0' }] },
};
const singleTF: Result040 = {
  cniVersion: '0.4.0',
  ips: [{ version: '6', address: '2001:db8:1::20/64', gateway: '2001:db8:1::1' }],
  routes: [{ dst: '::/0' }],
};
const singleTC: Result = {
  cniVersion: '1.1.0',
  ips: [{ address: '2001:db8:1::20/64', gateway: '2001:db8:1::1' }],
  routes: [{ dst: '::/0' }],
};

interface Sample {
  /** The sample in each shape, as a plugin of that version would emit it. */
  native: Record<Shape, AnyResult>;
  /** forward[from][to]: what converting native[from] to a version of shape `to` must give. */
  forward: Record<Shape, Record<Shape, AnyResult>>;
  /** back[from][via]: native[from] converted to `via` and back to its own version. */
  back: Record<Shape, Record<Shape, AnyResult>>;
}

function sample(c: Result, f: Result040, cf: Result, t: Result020, tf: Result040, tc: Result): Sample {
  return {
    native: { current: c, '040': f, '020': t },
    forward: {
      current: { current: c, '040': f, '020': t },
      '040': { current: cf, '040': f, '020': t },
      '020': { current: tc, '040': tf, '020': t },
    },
    back: {
      current: { current: c, '040': cf, '020': tc },
      '040': { current: f, '040': f, '020': tf },
      '020': { current: t, '040': t, '020': t },
    },
  };
}

const samples: Record<string, Sample> = {
  'dual-stack': sample(dualC, dualF, dualCF, dualT, dualTF, dualTC),
  'single-stack IPv6': sample(singleC, singleF, singleCF, singleT, singleTF, singleTC),
};

describe('convertResult: every ordered version pair', () => {
  for (const [name, s] of Object.entries(samples)) {
    describe(name, () => {
      for (const from of SUPPORTED_VERSIONS) {
        for (const to of SUPPORTED_VERSIONS) {
          it(`${from} -> ${to} -> ${from}`, () => {
            const input = withVersion(s.native[shapeOf(from)], from);
            const before = structuredClone(input);

            const out = convertResult(input, to);
            expect(out).toEqual(withVersion(s.forward[shapeOf(from)][shapeOf(to)], to));
            // The output is a valid result of its version, exactly as it would be re-read.
            expect(parseResult(JSON.parse(JSON.stringify(out)))).toEqual(out);

            const back = convertResult(out, from);
            expect(back).toEqual(withVersion(s.back[shapeOf(from)][shapeOf(to)], from));

            // Input untouched, and nothing shared with it.
            expect(input).toEqual(before);
            const inputObjects = objectsIn(input);
            for (const o of objectsIn(out)) expect(inputObjects.has(o)).toBe(false);
          });
        }
      }
    });
  }
});

describe('convertResult: representative conversions', () => {
  it('1.1.0 -> 1.0.0 keeps 1.1.0-only fields (same Go type in libcni; 1.x is forward compatible)', () => {
    const out = convertResult(dualC, '1.0.0') as Result;
    expect(out.cniVersion).toBe('1.0.0');
    expect(out.interfaces?.[2]).toEqual(dualC.interfaces![2]);
    expect(out.routes?.[0]).toEqual({ dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400, advmss: 1360, priority: 100, table: 100, scope: 0 });
  });

  it('1.1.0 -> 0.3.1 tags IPs by family, drops interface extras, keeps route extras', () => {
    const out = convertResult(dualC, '0.3.1') as Result040;
    expect(out.ips?.map((ip) => ip.version)).toEqual(['4', '6', '4', '6']);
    expect(out.interfaces?.[2]).toEqual({ name: 'eth0', mac: '0a:58:0a:01:00:05', sandbox: '/var/run/netns/pod1' });
    expect(out.routes?.[3]).toEqual({ dst: 'fd00:96::/108', priority: 5, scope: 253 });
  });

  it('1.0.0 -> 0.1.0 keeps the first IP of each family and only dst/gw of routes', () => {
    expect(convertResult({ ...dualC, cniVersion: '1.0.0' }, '0.1.0')).toEqual({ ...dualT, cniVersion: '0.1.0' });
  });

  it('drops a route whose family has no IP when going to 0.2.0', () => {
    const out = convertResult(singleC, '0.2.0') as Result020;
    expect(out).toEqual(singleT);
    expect(out.ip4).toBeUndefined();
  });

  it('0.2.0 -> 0.3.0 moves routes to the top level, keeping their fields', () => {
    const r: Result020 = { cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/8', routes: [{ dst: '10.0.0.0/8', mtu: 9000 }] } };
    expect(convertResult(r, '0.3.0')).toEqual({ cniVersion: '0.3.0', ips: [{ version: '4', address: '10.0.0.2/8' }], routes: [{ dst: '10.0.0.0/8', mtu: 9000 }] });
  });

  it('0.1.0 <-> 0.2.0 and 0.3.0 <-> 0.4.0 only change cniVersion', () => {
    expect(convertResult({ ...dualT, cniVersion: '0.1.0' }, '0.2.0')).toEqual(dualT);
    expect(convertResult({ ...dualF, cniVersion: '0.3.0' }, '0.4.0')).toEqual(dualF);
  });

  it('treats IPv4-mapped IPv6 addresses as IPv4, like Go To4()', () => {
    const r: Result = {
      cniVersion: '1.1.0',
      ips: [{ address: '::ffff:10.0.0.1/120' }, { address: '::FFFF:a00:2/120' }, { address: '::a00:3/120' }],
      routes: [{ dst: '::ffff:10.0.0.0/104' }],
    };
    expect((convertResult(r, '0.4.0') as Result040).ips?.map((ip) => ip.version)).toEqual(['4', '4', '6']);
    expect(convertResult(r, '0.2.0')).toEqual({
      cniVersion: '0.2.0',
      ip4: { ip: '::ffff:10.0.0.1/120', routes: [{ dst: '::ffff:10.0.0.0/104' }] },
      ip6: { ip: '::a00:3/120' },
    });
  });

  it('cannot go to 0.1.0/0.2.0 without any IP', () => {
    const r: Result = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0' }] };
    expectResultError(() => convertResult(r, '0.2.0'), 'cannot convert CNI result from 1.1.0 to 0.2.0: no valid IP addresses');
    expectResultError(() => convertResult({ cniVersion: '0.4.0' }, '0.1.0'), 'cannot convert CNI result from 0.4.0 to 0.1.0: no valid IP addresses');
  });

  it('rejects unsupported versions on either side', () => {
    expectResultError(() => convertResult(dualC, '0.5.0'), 'unsupported CNI result version "0.5.0"');
    expectResultError(() => convertResult({ cniVersion: '2.0.0' }, '1.1.0'), 'unsupported CNI result version "2.0.0"');
  });
});

describe('toCurrent and type guards', () => {
  it('keeps a 1.x version and converts older ones to 1.1.0', () => {
    expect(toCurrent(singleC)).toEqual(singleC);
    expect(toCurrent(singleC)).not.toBe(singleC);
    expect(toCurrent({ ...dualF, cniVersion: '0.3.0' })).toEqual(dualCF);
    expect(toCurrent({ ...dualT, cniVersion: '0.1.0' })).toEqual(dualTC);
  });

  it('guards go by cniVersion', () => {
    expect([isResult020(dualT), isResult040(dualT), isCurrent(dualT)]).toEqual([true, false, false]);
    expect([isResult020(dualF), isResult040(dualF), isCurrent(dualF)]).toEqual([false, true, false]);
    expect([isResult020(dualC), isResult040(dualC), isCurrent(dualC)]).toEqual([false, false, true]);
    expect([isResult020({ cniVersion: '9.9.9' }), isResult040({ cniVersion: '9.9.9' }), isCurrent({ cniVersion: '9.9.9' })]).toEqual([false, false, false]);
  });
});

describe('resultIPs', () => {
  it('splits dual-stack IPs', () => {
    expect(resultIPs(dualC)).toEqual([
      { address: '10.1.0.5/24', ip: '10.1.0.5', family: 4, prefix: 24, gateway: '10.1.0.1', interface: 2 },
      { address: 'fd00:10:1::5/64', ip: 'fd00:10:1::5', family: 6, prefix: 64, gateway: 'fd00:10:1::1', interface: 2 },
      { address: '10.2.0.5/16', ip: '10.2.0.5', family: 4, prefix: 16, interface: 2 },
      { address: 'fd00:10:2::5/64', ip: 'fd00:10:2::5', family: 6, prefix: 64, interface: 2 },
    ]);
    expect(resultIPs({ cniVersion: '1.1.0' })).toEqual([]);
  });
});

describe('parseResult', () => {
  it('accepts every native sample unchanged', () => {
    for (const s of Object.values(samples)) {
      for (const v of SUPPORTED_VERSIONS) {
        const r = withVersion(s.native[shapeOf(v)], v);
        expect(parseResult(JSON.parse(JSON.stringify(r)))).toEqual(r);
        expect(parseResult(JSON.parse(JSON.stringify(r)), v)).toEqual(r);
      }
    }
  });

  it('defaults a missing or empty cniVersion to 0.1.0', () => {
    const raw = { ip4: { ip: '10.0.0.2/24' } };
    expect(parseResult(raw)).toEqual({ cniVersion: '0.1.0', ip4: { ip: '10.0.0.2/24' } });
    expect(parseResult({ ...raw, cniVersion: '' })).toEqual({ cniVersion: '0.1.0', ip4: { ip: '10.0.0.2/24' } });
    expect(parseResult({})).toEqual({ cniVersion: '0.1.0' });
  });

  it('takes a missing cniVersion to be the expected version (libcni fixupResultVersion)', () => {
    expect(parseResult({ ips: [{ address: '10.0.0.2/24' }] }, '1.0.0')).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] });
  });

  it('keeps the own cniVersion when it has the expected shape, rejects another shape', () => {
    expect(parseResult({ cniVersion: '1.0.0' }, '1.1.0')).toEqual({ cniVersion: '1.0.0' });
    expect(parseResult({ cniVersion: '0.3.0' }, '0.4.0')).toEqual({ cniVersion: '0.3.0' });
    expectResultError(
      () => parseResult({ cniVersion: '0.4.0' }, '1.1.0'),
      'CNI result has cniVersion "0.4.0", which is not compatible with expected version "1.1.0"',
    );
  });

  it('rejects unsupported versions', () => {
    expectResultError(() => parseResult({ cniVersion: '0.5.0' }), 'unsupported CNI result version "0.5.0"');
    expectResultError(() => parseResult({ cniVersion: 'one' }), 'unsupported CNI result version "one"');
    expectResultError(() => parseResult({}, '3.0.0'), 'unsupported CNI result version "3.0.0"');
  });

  it('keeps only the fields the version knows', () => {
    expect(
      parseResult({
        cniVersion: '1.1.0',
        extra: true,
        ip4: { ip: '10.0.0.2/24' },
        interfaces: [{ name: 'eth0', metadata: { a: 'b' }, mtu: 1500 }],
        ips: [{ address: '10.0.0.2/24', version: '4', foo: 1 }],
        routes: [{ dst: '0.0.0.0/0', via: 'x' }],
        dns: { nameservers: ['1.1.1.1'], sortlist: [] },
      }),
    ).toEqual({
      cniVersion: '1.1.0',
      interfaces: [{ name: 'eth0', mtu: 1500 }],
      ips: [{ address: '10.0.0.2/24' }],
      routes: [{ dst: '0.0.0.0/0' }],
      dns: { nameservers: ['1.1.1.1'] },
    });
    // libcni's 0.4.0 Interface has no mtu/socketPath/pciID; its Route is the shared one.
    expect(
      parseResult({
        cniVersion: '0.4.0',
        interfaces: [{ name: 'eth0', mtu: 1500, socketPath: '/s', pciID: 'p', sandbox: '/ns' }],
        routes: [{ dst: '0.0.0.0/0', table: 5 }],
      }),
    ).toEqual({ cniVersion: '0.4.0', interfaces: [{ name: 'eth0', sandbox: '/ns' }], routes: [{ dst: '0.0.0.0/0', table: 5 }] });
    expect(parseResult({ cniVersion: '0.2.0', ips: [{ address: '10.0.0.2/24' }], interfaces: [] })).toEqual({ cniVersion: '0.2.0' });
  });

  it('treats null as absent, like Go', () => {
    expect(parseResult({ cniVersion: '1.1.0', interfaces: null, ips: [{ address: '10.0.0.2/24', gateway: null, interface: null }], dns: null })).toEqual({
      cniVersion: '1.1.0',
      ips: [{ address: '10.0.0.2/24' }],
    });
  });

  it('does not bounds-check the interface index (libcni does not)', () => {
    expect(parseResult({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24', interface: 3 }] })).toEqual({
      cniVersion: '1.0.0',
      ips: [{ address: '10.0.0.2/24', interface: 3 }],
    });
  });

  const current = (patch: Record<string, unknown>): Record<string, unknown> => ({
    cniVersion: '1.1.0',
    interfaces: [{ name: 'eth0' }],
    ips: [{ interface: 0, address: '10.0.0.2/24' }],
    routes: [{ dst: '0.0.0.0/0' }],
    ...patch,
  });
  const iface = (f: Record<string, unknown>) => current({ interfaces: [{ name: 'eth0', ...f }] });
  const ip = (f: Record<string, unknown>) => current({ ips: [{ address: '10.0.0.2/24', ...f }] });
  const route = (f: Record<string, unknown>) => current({ routes: [{ dst: '0.0.0.0/0', ...f }] });
  const ip040 = (f: Record<string, unknown>) => ({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.0.0.2/24', ...f }] });
  const r020 = (f: Record<string, unknown>) => ({ cniVersion: '0.2.0', ...f });

  const malformed: [string, unknown, string][] = [
    ['not an object', null, 'expected a JSON object, got null'],
    ['an array', [], 'expected a JSON object, got []'],
    ['a string', 'ok', 'expected a JSON object, got "ok"'],
    ['cniVersion not a string', { cniVersion: 1 }, 'cniVersion: expected a string, got 1'],
    ['interfaces not an array', current({ interfaces: {} }), 'interfaces: expected an array, got {}'],
    ['interface not an object', current({ interfaces: ['eth0'] }), 'interfaces[0]: expected an object, got "eth0"'],
    ['interface without name', current({ interfaces: [{ mac: 'aa' }] }), 'interfaces[0].name: expected a non-empty string, got nothing'],
    ['interface name empty', iface({ name: '' }), 'interfaces[0].name: expected a non-empty string, got ""'],
    ['interface mac', iface({ mac: 5 }), 'interfaces[0].mac: expected a string, got 5'],
    ['interface mtu negative', iface({ mtu: -1 }), 'interfaces[0].mtu: expected an integer from 0 to 4294967295, got -1'],
    ['interface mtu fractional', iface({ mtu: 1.5 }), 'interfaces[0].mtu: expected an integer from 0 to 4294967295, got 1.5'],
    ['interface mtu string', iface({ mtu: '1500' }), 'interfaces[0].mtu: expected an integer from 0 to 4294967295, got "1500"'],
    ['interface sandbox', iface({ sandbox: false }), 'interfaces[0].sandbox: expected a string, got false'],
    ['interface socketPath', iface({ socketPath: 1 }), 'interfaces[0].socketPath: expected a string, got 1'],
    ['interface pciID', iface({ pciID: {} }), 'interfaces[0].pciID: expected a string, got {}'],
    ['ips not an array', current({ ips: 'x' }), 'ips: expected an array, got "x"'],
    ['ip without address', current({ ips: [{}] }), 'ips[0].address: expected an address in CIDR notation, got nothing'],
    ['address without prefix', ip({ address: '10.0.0.2' }), 'ips[0].address: expected an address in CIDR notation, got "10.0.0.2"'],
    ['IPv4 prefix too long', ip({ address: '10.0.0.2/33' }), 'ips[0].address: expected an address in CIDR notation, got "10.0.0.2/33"'],
    ['IPv6 prefix too long', ip({ address: 'fd00::2/129' }), 'ips[0].address: expected an address in CIDR notation, got "fd00::2/129"'],
    ['prefix with leading zero', ip({ address: '10.0.0.2/024' }), 'ips[0].address: expected an address in CIDR notation, got "10.0.0.2/024"'],
    ['two slashes', ip({ address: '10.0.0.2/24/8' }), 'ips[0].address: expected an address in CIDR notation, got "10.0.0.2/24/8"'],
    ['not an address', ip({ address: 'pod/24' }), 'ips[0].address: expected an address in CIDR notation, got "pod/24"'],
    ['zoned address', ip({ address: 'fe80::1%eth0/64' }), 'ips[0].address: expected an address in CIDR notation, got "fe80::1%eth0/64"'],
    ['address a number', ip({ address: 167772162 }), 'ips[0].address: expected an address in CIDR notation, got 167772162'],
    ['gateway', ip({ gateway: '10.0.0.256' }), 'ips[0].gateway: expected an IP address, got "10.0.0.256"'],
    ['gateway as CIDR', ip({ gateway: '10.0.0.1/24' }), 'ips[0].gateway: expected an IP address, got "10.0.0.1/24"'],
    ['interface index negative', ip({ interface: -1 }), 'ips[0].interface: expected an integer from 0 to 4294967295, got -1'],
    ['interface index string', ip({ interface: '0' }), 'ips[0].interface: expected an integer from 0 to 4294967295, got "0"'],
    ['040 ip version number', ip040({ version: 4 }), 'ips[0].version: expected "4" or "6", got 4'],
    ['040 ip version mismatch', ip040({ version: '6' }), 'ips[0].version: expected "4" for address 10.0.0.2/24, got "6"'],
    ['040 interface', { cniVersion: '0.3.1', interfaces: [{ name: 7 }] }, 'interfaces[0].name: expected a non-empty string, got 7'],
    ['routes not an array', current({ routes: { dst: '0.0.0.0/0' } }), 'routes: expected an array, got {"dst":"0.0.0.0/0"}'],
    ['route without dst', current({ routes: [{ gw: '10.0.0.1' }] }), 'routes[0].dst: expected an address in CIDR notation, got nothing'],
    ['route dst not CIDR', route({ dst: 'default' }), 'routes[0].dst: expected an address in CIDR notation, got "default"'],
    ['route gw', route({ gw: 'router' }), 'routes[0].gw: expected an IP address, got "router"'],
    ['route mtu', route({ mtu: -5 }), 'routes[0].mtu: expected an integer from 0 to 4294967295, got -5'],
    ['route advmss', route({ advmss: '1460' }), 'routes[0].advmss: expected an integer from 0 to 4294967295, got "1460"'],
    ['route priority', route({ priority: 0.5 }), 'routes[0].priority: expected an integer from 0 to 4294967295, got 0.5'],
    ['route table', route({ table: -1 }), 'routes[0].table: expected an integer from 0 to 4294967295, got -1'],
    ['route scope', route({ scope: 256 }), 'routes[0].scope: expected an integer from 0 to 255, got 256'],
    ['dns not an object', current({ dns: ['8.8.8.8'] }), 'dns: expected an object, got ["8.8.8.8"]'],
    ['dns nameservers not a list', current({ dns: { nameservers: '8.8.8.8' } }), 'dns.nameservers: expected an array of strings, got "8.8.8.8"'],
    ['dns nameserver not a string', current({ dns: { nameservers: ['8.8.8.8', 9] } }), 'dns.nameservers[1]: expected a string, got 9'],
    ['dns domain', current({ dns: { domain: ['a'] } }), 'dns.domain: expected a string, got ["a"]'],
    ['dns search', current({ dns: { search: [true] } }), 'dns.search[0]: expected a string, got true'],
    ['dns options', current({ dns: { options: 'ndots:5' } }), 'dns.options: expected an array of strings, got "ndots:5"'],
    ['020 ip4 not an object', r020({ ip4: '10.0.0.2/24' }), 'ip4: expected an object, got "10.0.0.2/24"'],
    ['020 ip4 without ip', r020({ ip4: { gateway: '10.0.0.1' } }), 'ip4.ip: expected an address in CIDR notation, got nothing'],
    ['020 ip4 holding IPv6', r020({ ip4: { ip: 'fd00::2/64' } }), 'ip4.ip: expected an IPv4 address, got "fd00::2/64"'],
    ['020 ip6 holding IPv4', r020({ ip6: { ip: '10.0.0.2/24' } }), 'ip6.ip: expected an IPv6 address, got "10.0.0.2/24"'],
    ['020 gateway', r020({ ip4: { ip: '10.0.0.2/24', gateway: 'gw' } }), 'ip4.gateway: expected an IP address, got "gw"'],
    ['020 routes', r020({ ip6: { ip: 'fd00::2/64', routes: [{ dst: '::/0', gw: 1 }] } }), 'ip6.routes[0].gw: expected an IP address, got 1'],
    ['020 dns', r020({ dns: { domain: 3 } }), 'dns.domain: expected a string, got 3'],
  ];
  for (const [what, raw, message] of malformed) {
    it(`rejects ${what}`, () => {
      expectResultError(() => parseResult(raw), `invalid CNI result: ${message}`);
    });
  }

  it('truncates long values in messages', () => {
    expectResultError(
      () => parseResult(ip({ gateway: 'x'.repeat(100) })),
      `invalid CNI result: ips[0].gateway: expected an IP address, got "${'x'.repeat(56)}...`,
    );
  });
});

describe('0.3.x results printed by libcni 1.x plugins', () => {
  it('derives a missing ips[].version from the address, as the real loopback plugin prints it', () => {
    // Exactly what Debian's loopback prints for a 0.3.1 config.
    const out = {
      cniVersion: '0.3.1',
      interfaces: [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: '/run/netns/x' }],
      ips: [{ interface: 0, address: '127.0.0.1/8' }, { interface: 0, address: '::1/128' }],
      dns: {},
    };
    const r = parseResult(out, '0.3.1') as Result040;
    expect(r.ips?.map((i) => i.version)).toEqual(['4', '6']);
  });
});


// Networks (go-cni's CNI object): a pod joins loopback plus the first maxConfNum networks of a
// conf dir. Setting them up, checking and tearing them down is the engine's now
// (test/engine/engine.test.ts runs those cases against real plugins).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Networks } from '../../src/cni/index.js';
import { Cleanup, TEST_PLUGIN_PATH, hostLocalIpam, randomHex, tmpDir, uniqueSubnet, writeJSON, type Subnet } from '../helpers/env.js';

const cleanup = new Cleanup();
let root: string;
let confDir: string;
let cacheDir: string;
let dataDir: string;
let nets: Networks;
const subnets: Subnet[] = [];
const names: string[] = [];

function bridgeConflist(name: string, subnet: Subnet): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name,
    plugins: [{ type: 'bridge', bridge: cleanup.link(`pn${randomHex(6)}`), isGateway: false, ipMasq: false, ipam: hostLocalIpam(subnet, dataDir) }],
  };
}

beforeAll(async () => {
  root = cleanup.dir(await tmpDir('podnet-networks-'));
  confDir = join(root, 'conf');
  cacheDir = join(root, 'cache');
  dataDir = join(root, 'ipam');
  await mkdir(confDir);
  for (let i = 0; i < 2; i++) {
    subnets.push(uniqueSubnet());
    names.push(`nw${i}-${randomHex(6)}`);
    await writeJSON(join(confDir, `${10 + i}-net.conflist`), bridgeConflist(names[i], subnets[i]));
  }
  // A third network that must not be joined with maxConfNum 2.
  await writeJSON(join(confDir, '30-third.conflist'), { cniVersion: '1.0.0', name: 'third', plugins: [{ type: 'fail-json' }] });
  await writeJSON(join(confDir, '40-broken.conflist'), { cniVersion: '1.0.0', plugins: [] });
  nets = await Networks.load({ pluginDirs: TEST_PLUGIN_PATH, confDir, cacheDir, maxConfNum: 2 });
});

afterAll(async () => {
  const errors = await cleanup.run();
  expect(errors).toEqual([]);
});

describe('Networks.load', () => {
  it('takes loopback plus the first maxConfNum networks, and reports the broken file', () => {
    expect(nets.attachments.map((a) => [a.list.name, a.ifName])).toEqual([
      ['cni-loopback', 'lo'],
      [names[0], 'eth0'],
      [names[1], 'eth1'],
    ]);
    expect(nets.networks.map((n) => n.name)).toEqual(names);
    expect(nets.ready()).toBe(true);
    expect(nets.loadErrors.map((e) => e.file)).toEqual([join(confDir, '40-broken.conflist')]);
  });

  it('an empty conf dir is not ready', async () => {
    const empty = await Networks.load({ pluginDirs: TEST_PLUGIN_PATH, confDir: join(root, 'none'), cacheDir });
    expect(empty.ready()).toBe(false);
    expect(empty.attachments.map((a) => a.ifName)).toEqual(['lo']);
  });
});

// The one network every contender uses: a bench bridge with host-local, then portmap; and the
// scenarios that differ only in the pods (a host port each, or none).
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { log, hex, onCleanup } from './cleanup.mjs';
import { execPlugin } from './cni-exec.mjs';
import { must, run } from './proc.mjs';

export const SCENARIOS = [
  { name: 'noport', hostPort: false, label: 'no host port (portmap with no mappings)' },
  { name: 'port', hostPort: true, label: 'one host port per pod' },
];

let nextHostPort = 20000 + randomInt(0, 20000);
export const hostPort = () => nextHostPort++;

/** A 10.<100-250>.0.0/16 that no route on the host overlaps. */
async function pickSubnet() {
  const routes = (await must('ip', ['-4', 'route', 'show', 'table', 'all'])).stdout;
  const used = new Set();
  for (const m of routes.matchAll(/\b10\.(\d+)\./g)) used.add(Number(m[1]));
  for (let tries = 0; tries < 500; tries++) {
    const b = randomInt(100, 251);
    if (!used.has(b)) return `10.${b}.0.0/16`;
  }
  throw new Error('no free 10.<100-250>.0.0/16 on this host');
}

function networkList({ name, bridge, subnet, dataDir }) {
  return {
    cniVersion: '1.0.0',
    name,
    plugins: [
      { type: 'bridge', bridge, isGateway: true, ipMasq: false, ipam: { type: 'host-local', dataDir, ranges: [[{ subnet }]] } },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
}
// What podnet and containerd (go-cni's WithLoNetwork) add before the cluster network.
export const LOOPBACK_LIST = { cniVersion: '0.3.1', name: 'cni-loopback', plugins: [{ type: 'loopback' }] };

/** The bench network under root (bridge, subnet, host-local dir), with its cleanups registered. */
export async function makeNetwork(root) {
  const bridge = `pnb${hex(10)}`;
  const subnet = await pickSubnet();
  const netName = `pnbench-${hex(8)}`;
  const net = networkList({ name: netName, bridge, subnet, dataDir: join(root, 'ipam') });
  onCleanup(`ip link del ${bridge}`, async () => {
    const r = await run('ip', ['link', 'del', bridge], { detached: false });
    if (r.code !== 0 && !/Cannot find device|does not exist/.test(r.stderr)) throw new Error(r.stderr.trim());
  });
  onCleanup(`portmap rules of ${netName}`, () => purgePortmapLeaks(net));
  return { bridge, subnet, netName, net };
}

export async function iptablesLeaks(netName) {
  const r = await run('iptables-save', [], { detached: false });
  return r.stdout.split('\n').filter((l) => l.includes(netName));
}

/**
 * Last resort after a crash: portmap rules of our network whose DEL never ran (their sandbox's
 * state is gone) are removed by a portmap DEL for each container id found in the rule comments.
 */
async function purgePortmapLeaks(net) {
  const ids = new Set();
  for (const line of await iptablesLeaks(net.name)) {
    const m = /id: \\?"([0-9a-f]+)/.exec(line);
    if (m) ids.add(m[1]);
  }
  if (ids.size === 0) return;
  log(`cleanup: ${ids.size} container(s) of ${net.name} still have portmap rules: DEL them`);
  const portmap = net.plugins[1];
  for (const id of ids) {
    // portmap's DEL does nothing without a port mapping; any mapping makes it drop the container's chains.
    const pod = { id, ns: '', nsPath: '', cniArgs: 'IgnoreUnknown=1', capabilityArgs: { portMappings: [{ hostPort: 1, containerPort: 1, protocol: 'tcp' }] } };
    await execPlugin('DEL', net, portmap, undefined, pod, 'eth0').catch((err) => log(`cleanup: ${err.message}`));
  }
  const left = await iptablesLeaks(net.name);
  if (left.length > 0) throw new Error(`${left.length} iptables rule(s) of ${net.name} could not be removed`);
}

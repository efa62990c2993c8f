// The private-containerd harness, proven with a plain bridge + host-local + portmap conflist in
// containerd's CNI conf dir: crictl runp gives the pod an IP of that subnet inside its netns,
// stopp/rmp release everything, and nothing of the run is left.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bridgeConflist, expectNothingLeft, inSubnet, newRoot, onCleanup, uniqueBridge, uniqueSubnet } from '../e2e/harness.js';
import { freeHostPort, ipAddrsIn, linkExists, natRulesMatching, PLUGIN_DIRS, removeEmptyPortmapChains, withHostLock } from '../helpers/env.js';
import { Containerd, containerdMissing } from './harness.js';

/** A dir's entries, or undefined when it does not exist. */
const listing = (dir: string): Promise<string[] | undefined> => readdir(dir).then((l) => l.sort(), () => undefined);

const missing = containerdMissing();
if (missing) console.warn(`skipping the containerd tests: ${missing}`);

describe.skipIf(missing !== undefined)('private containerd (crictl) with a plain bridge conflist', () => {
  const pids: number[] = [];

  it('runp → an IP of the subnet in the pod netns; stopp/rmp → released; stop → nothing left', async () => {
    const root = await newRoot();
    const confDir = join(root, 'net.d');
    const subnet = uniqueSubnet();
    const bridge = uniqueBridge();
    const dataDir = join(root, 'ipam');
    await mkdir(confDir);
    await writeFile(join(confDir, '10-test.conflist'), bridgeConflist('ctrd-test', { bridge, subnet: subnet.subnet, dataDir, portmap: true }));
    const hostDirs = ['/run/containerd', '/var/lib/containerd', '/var/lib/cni', '/run/netns', '/var/run/netns', '/opt/containerd'];
    const before = await Promise.all(hostDirs.map(listing));
    const c = await Containerd.start({ confDir, binDirs: PLUGIN_DIRS, metrics: true });
    onCleanup(() => c.stop(), 'stop the private containerd');
    onCleanup(() => withHostLock('iptables', () => removeEmptyPortmapChains()), 'remove empty portmap chains');
    pids.push(...c.startedPids());
    const hostPort = await freeHostPort();
    const podFile = await c.podConfigFile({ portMappings: [{ container_port: 80, host_port: hostPort }] });
    const id = (await c.crictlOk(['runp', podFile])).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const pod = await c.inspectPod(id);
    expect(pod.status.state).toBe('SANDBOX_READY');
    const ip = pod.status.network?.ip ?? '';
    expect(inSubnet(ip, subnet), ip).toBe(true);
    const netns = await c.podNetns(id);
    const addrs = await ipAddrsIn(netns, 'eth0');
    expect(addrs.map((a) => a.local)).toContain(ip);
    expect(await linkExists(undefined, bridge)).toBe(true);
    expect((await readdir(join(dataDir, 'ctrd-test'))).filter((f) => f.startsWith('10.'))).toEqual([ip]);
    // portmap got containerd's port mapping.
    expect((await natRulesMatching(ip)).some((l) => l.includes(`--dport ${hostPort}`))).toBe(true);
    // The pod's pause process is one of the harness's (stop() ends them all).
    const comms = await Promise.all((await c.processes()).map((p) => readFile(`/proc/${p}/comm`, 'utf8').catch(() => '')));
    expect(comms.map((x) => x.trim())).toEqual(expect.arrayContaining(['cat', 'containerd', 'containerd-shim', 'pause']));
    // go-cni's result cache went to the private /var/lib/cni, the pod's netns mount under the state dir.
    expect((await readdir(c.privatePath('/var/lib/cni/results'))).some((f) => f.includes(id))).toBe(true);
    expect((await readdir(join(c.stateDir, 'io.containerd.grpc.v1.cri', 'netns'))).length).toBe(1);
    expect(await Promise.all(hostDirs.map(listing))).toEqual(before);
    // containerd's own metrics endpoint answers with its Prometheus text.
    expect(await c.metrics()).toMatch(/^# (HELP|TYPE) /m);

    await c.crictlOk(['stopp', id]);
    expect((await readdir(join(dataDir, 'ctrd-test'))).filter((f) => f.startsWith('10.'))).toEqual([]);
    await c.crictlOk(['rmp', id]);
    expect((await c.crictlOk(['pods', '-q'])).trim()).toBe('');
    expect(await natRulesMatching(ip)).toEqual([]);

    const processes = await c.processes();
    expect(processes.length).toBeGreaterThan(0);
    const stateDir = c.root;
    await c.stop();
    expect(existsSync(stateDir)).toBe(false);
    for (const pid of processes) expect(existsSync(`/proc/${pid}`), `pid ${pid}`).toBe(false);
    expect(await Promise.all(hostDirs.map(listing))).toEqual(before);
  });

  it('a second runtime handler reads its own conf dir (crictl runp --runtime)', async () => {
    const root = await newRoot();
    const nets = ['main', 'fast'].map((name) => ({ name, confDir: join(root, `${name}.d`), subnet: uniqueSubnet(), bridge: uniqueBridge() }));
    for (const n of nets) {
      await mkdir(n.confDir);
      await writeFile(join(n.confDir, '10-net.conflist'), bridgeConflist(`ctrd-${n.name}`, { bridge: n.bridge, subnet: n.subnet.subnet, dataDir: join(root, 'ipam') }));
    }
    const [main, fast] = nets as [(typeof nets)[0], (typeof nets)[0]];
    const c = await Containerd.start({ confDir: main.confDir, binDirs: PLUGIN_DIRS, runtimeHandlers: [{ name: 'fast', cniConfDir: fast.confDir }] });
    onCleanup(() => c.stop(), 'stop the private containerd');
    pids.push(...c.startedPids());
    const a = (await c.crictlOk(['runp', await c.podConfigFile()])).trim();
    const b = (await c.crictlOk(['runp', '--runtime', 'fast', await c.podConfigFile()])).trim();
    expect(inSubnet((await c.inspectPod(a)).status.network?.ip ?? '', main.subnet)).toBe(true);
    expect(inSubnet((await c.inspectPod(b)).status.network?.ip ?? '', fast.subnet)).toBe(true);
    await c.stop();
    expect(await c.processes()).toEqual([]);
  });

  it('leaves nothing behind', async () => {
    await expectNothingLeft(pids);
  });
});

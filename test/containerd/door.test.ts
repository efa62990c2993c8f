// podnet as containerd's network backend, end to end: a private containerd 1.6 whose CNI conf
// dirs hold only a podnet-cni conflist, a real podnetd serving its CNI door (started where it
// sees containerd's CNI_NETNS bind mounts: Containerd.backendCommand), crictl driving pods.
// runp → the IP of podnet's network inside the pod's netns, a NAD attachment by annotation,
// port mappings through portmap, a runtime handler's own network, the operator CLI showing
// runtime-owned namespaces; stopp/rmp release everything; kill -9 of podnetd during a burst of
// runp, restart, stopp/rmp of everything: nothing leaked.
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SandboxStore } from '../../src/engine/store.js';
import { bridgeConflist, expectNothingLeft, inSubnet, newRoot, onCleanup, REPO_ROOT, startDaemon, uniqueBridge, uniqueSubnet, type Daemon, type TestSubnet } from '../e2e/harness.js';
import { freeHostPort, ipAddrsIn, natRulesMatching, PLUGIN_DIRS, removeEmptyPortmapChains, waitFor, withHostLock } from '../helpers/env.js';
import { Containerd, containerdMissing } from './harness.js';

const SHIM_DIR = join(REPO_ROOT, 'dist', 'libexec');
const missing = containerdMissing() ?? (existsSync(join(SHIM_DIR, 'podnet-cni')) ? undefined : 'podnet-cni is not built (make build)');
if (missing) console.warn(`skipping the containerd end-to-end tests of the CNI door: ${missing}`);

const CAPS = { portMappings: true, bandwidth: true, dns: true, 'io.kubernetes.cri.pod-annotations': true };

interface Net {
  name: string;
  subnet: TestSubnet;
  dataDir: string;
}

describe.skipIf(missing !== undefined)('containerd → podnet-cni → podnetd (the engine)', () => {
  let root: string;
  let c: Containerd;
  let d: Daemon;
  const pids: number[] = [];
  const cluster: Net = { name: `door-${Math.random().toString(16).slice(2, 8)}`, subnet: uniqueSubnet(), dataDir: '' };
  const gold: Net = { name: `gold-${Math.random().toString(16).slice(2, 8)}`, subnet: uniqueSubnet(), dataDir: '' };
  const storage: Net = { name: 'storage', subnet: uniqueSubnet(), dataDir: '' };

  beforeAll(async () => {
    root = await newRoot();
    for (const n of [cluster, gold, storage]) n.dataDir = join(root, `ipam-${n.name}`);
    // podnetd's networks: the cluster network (with portmap) and the gold handler's own.
    const goldDir = join(root, 'net-gold.d');
    await mkdir(goldDir);
    await writeFile(join(goldDir, '10-gold.conflist'), bridgeConflist(gold.name, { bridge: uniqueBridge(), subnet: gold.subnet.subnet, dataDir: gold.dataDir }));
    // A NetworkAttachmentDefinition file for the annotation's net1.
    const nadDir = join(root, 'attachments.d');
    await mkdir(nadDir);
    const storageConf = JSON.parse(bridgeConflist(storage.name, { bridge: uniqueBridge(), subnet: storage.subnet.subnet, dataDir: storage.dataDir, isGateway: false })) as Record<string, unknown>;
    await writeFile(
      join(nadDir, 'shop-storage.json'),
      JSON.stringify({ apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'storage', namespace: 'shop' }, spec: { config: JSON.stringify(storageConf) } }),
    );
    const cniSocket = join(root, 'run', 'cni', 'podnet-cni.sock');
    // containerd's conf dirs: only the shim, for the default handler and for gold.
    const ctrdConf = join(root, 'ctrd-net.d');
    const ctrdGold = join(root, 'ctrd-gold.d');
    await mkdir(ctrdConf);
    await mkdir(ctrdGold);
    await writeFile(join(ctrdConf, '10-podnet.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'podnet', plugins: [{ type: 'podnet-cni', socket: cniSocket, capabilities: CAPS }] }));
    await writeFile(join(ctrdGold, '10-podnet.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'podnet-gold', plugins: [{ type: 'podnet-cni', socket: cniSocket, runtimeHandler: 'gold', capabilities: CAPS }] }));
    c = await Containerd.start({ confDir: ctrdConf, binDirs: [SHIM_DIR, ...PLUGIN_DIRS], runtimeHandlers: [{ name: 'gold', cniConfDir: ctrdGold }] });
    onCleanup(() => c.stop(), 'stop the private containerd');
    onCleanup(() => withHostLock('iptables', () => removeEmptyPortmapChains()), 'remove empty portmap chains');
    pids.push(...c.startedPids());
    d = await startDaemon({
      root,
      confFiles: { '10-cluster.conflist': bridgeConflist(cluster.name, { bridge: uniqueBridge(), subnet: cluster.subnet.subnet, dataDir: cluster.dataDir, portmap: true }) },
      runtimes: { gold: { cni_conf_dir: goldDir } },
      cniServer: { socket: cniSocket },
      wrap: (cmd, args) => c.backendCommand(cmd, args),
    });
  }, 120_000);

  afterAll(async () => {
    await expectNothingLeft(pids);
  }, 120_000);

  const records = (): Promise<Awaited<ReturnType<typeof SandboxStore.readAll>>> => SandboxStore.readAll(d.stateDir);
  const allocations = async (n: Net): Promise<string[]> => (await readdir(join(n.dataDir, n.name)).catch(() => [] as string[])).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
  const cacheEntries = (): Promise<string[]> => d.cacheEntries();

  it('runp → podnet\'s IP in the pod netns, net1 from a NAD, a NAT rule for the port; the CLI marks the namespace runtime-owned; stopp/rmp release it all', async () => {
    const hostPort = await freeHostPort();
    const podFile = await c.podConfigFile({ name: 'web-0', namespace: 'shop', annotations: { 'k8s.v1.cni.cncf.io/networks': 'storage' }, portMappings: [{ container_port: 80, host_port: hostPort }] });
    const id = (await c.crictlOk(['runp', podFile])).trim();
    const ip = (await c.inspectPod(id)).status.network?.ip ?? '';
    expect(inSubnet(ip, cluster.subnet), ip).toBe(true);
    const netns = await c.podNetns(id);
    const v4 = async (ifName: string): Promise<string[]> => (await ipAddrsIn(netns, ifName)).map((a) => a.local).filter((a) => !a.includes(':'));
    expect(await v4('eth0')).toEqual([ip]);
    const net1 = await v4('net1');
    expect(net1).toHaveLength(1);
    expect(inSubnet(net1[0], storage.subnet), net1[0]).toBe(true);
    expect((await natRulesMatching(ip)).some((l) => l.includes(`--dport ${hostPort}`))).toBe(true);
    const [rec] = await records();
    expect(rec).toMatchObject({ id, door: 'cni', netnsOwner: 'runtime', phase: 'ready', metadata: { namespace: 'shop', name: 'web-0' } });
    expect(rec.netnsPath.startsWith(join(c.stateDir, 'io.containerd.grpc.v1.cri', 'netns'))).toBe(true);

    // As an operator runs it on the node: where the runtime's namespaces are visible (as podnetd).
    const podnet = (args: string[]) => {
      const [cmd, argv] = c.backendCommand(process.execPath, [join(REPO_ROOT, 'bin', 'podnet'), ...args, '--state-dir', d.stateDir]);
      return execa(cmd, argv, { reject: false });
    };
    const listed = JSON.parse(String((await podnet(['sandboxes', '--json'])).stdout)) as Array<Record<string, unknown>>;
    expect(listed).toEqual([expect.objectContaining({ id, door: 'cni', netnsOwner: 'runtime', ips: [ip] })]);
    const table = String((await podnet(['sandboxes'])).stdout).trimEnd().split('\n');
    expect(table[0].split(/\s+/)).toEqual(['ID', 'POD', 'NAMESPACE', 'HANDLER', 'DOOR', 'NETNS-OWNER', 'STATE', 'IPS', 'AGE']);
    expect(table[1].split(/\s+/).slice(4, 6)).toEqual(['cni', 'runtime']);
    const status = JSON.parse(String((await podnet(['network-status', id.slice(0, 12)])).stdout)) as Array<{ interface?: string; ips?: string[] }>;
    expect(status.map((s) => s.interface)).toEqual(['eth0', 'net1']);
    // doctor sees no leak in a live runtime-owned pod (and so --fix has nothing to touch).
    const doctor = await podnet(['doctor', '--json', '--netns-dir', d.netnsDir, '--cache-dir', d.cacheDir, '--conf-dir', d.confDir]);
    const found = (JSON.parse(String(doctor.stdout)) as { leaks: Array<{ path: string; informational?: boolean }> }).leaks.filter((l) => !l.informational);
    expect(found).toEqual([]);
    // From the host, where containerd's namespace mounts are invisible, the pod's veth looks
    // orphaned: doctor only lists it, and --fix leaves the runtime's pod alone.
    const hostDoctor = (fix: boolean) =>
      execa(process.execPath, [join(REPO_ROOT, 'bin', 'podnet'), 'doctor', '--json', ...(fix ? ['--fix'] : []), '--state-dir', d.stateDir, '--netns-dir', d.netnsDir, '--cache-dir', d.cacheDir, '--conf-dir', d.confDir], { reject: false });
    const seen = JSON.parse(String((await hostDoctor(false)).stdout)) as { leaks: Array<{ kind: string; informational?: boolean; detail: string }> };
    expect(seen.leaks.filter((l) => !l.informational)).toEqual([]);
    expect(seen.leaks.some((l) => l.kind === 'link' && l.detail.includes('runtime-owned'))).toBe(true);
    expect((await hostDoctor(true)).exitCode).toBe(0);
    expect(await v4('eth0')).toEqual([ip]);

    await c.crictlOk(['stopp', id]);
    // StopPodSandbox's DEL released it all; the record is forgotten (CNI DEL), RemovePodSandbox's DEL is a no-op.
    expect(await records()).toEqual([]);
    expect(await allocations(cluster)).toEqual([]);
    expect(await allocations(storage)).toEqual([]);
    expect(await natRulesMatching(ip)).toEqual([]);
    await c.crictlOk(['rmp', id]);
    expect(await cacheEntries()).toEqual([]);
    expect(d.logs.filter((l) => l['door'] === 'cni' && l['route'] === '/cni').every((l) => l['outcome'] === 'OK')).toBe(true);
  }, 120_000);

  it('a second runtime handler with its own conf dir gets its own network', async () => {
    const podFile = await c.podConfigFile({ namespace: 'shop' });
    const id = (await c.crictlOk(['runp', '--runtime', 'gold', podFile])).trim();
    const ip = (await c.inspectPod(id)).status.network?.ip ?? '';
    expect(inSubnet(ip, gold.subnet), ip).toBe(true);
    expect((await ipAddrsIn(await c.podNetns(id), 'eth0')).map((a) => a.local)).toContain(ip);
    expect(await records()).toEqual([expect.objectContaining({ id, runtimeHandler: 'gold', door: 'cni' })]);
    await c.crictlOk(['stopp', id]);
    await c.crictlOk(['rmp', id]);
    expect(await records()).toEqual([]);
    expect(await allocations(gold)).toEqual([]);
    expect(await cacheEntries()).toEqual([]);
  }, 120_000);

  it('kill -9 of podnetd during a burst of runp, restart, stopp/rmp of everything: nothing leaked', async () => {
    const files = await Promise.all(Array.from({ length: 6 }, () => c.podConfigFile({ namespace: 'shop' })));
    const burst = Promise.all(files.map((f) => c.crictl(['runp', f], 120_000)));
    // Kill once the burst is in podnetd (a record on disk), whatever phase each pod is in.
    expect(await waitFor(async () => (await records()).length > 0, 60_000, 10)).toBe(true);
    await d.kill();
    await d.spawn();
    const results = await burst;
    // The restarted daemon recovered (finished or undid what the kill interrupted) before serving.
    expect(d.logs.filter((l) => l['msg'] === 'sandbox store recovered')).toHaveLength(2);
    // Each runp either succeeded, or failed cleanly; every pod containerd kept is stopped and removed.
    const started = results.filter((r) => r.exitCode === 0).map((r) => r.stdout.trim());
    for (const id of started) expect(inSubnet((await c.inspectPod(id)).status.network?.ip ?? '', cluster.subnet)).toBe(true);
    const ids = (await c.crictlOk(['pods', '-q'])).split('\n').filter(Boolean);
    for (const id of ids) {
      await c.crictlOk(['stopp', id]);
      await c.crictlOk(['rmp', id]);
    }
    expect(await c.crictlOk(['pods', '-q'])).toBe('');
    expect(await records()).toEqual([]);
    expect(await allocations(cluster)).toEqual([]);
    expect(await cacheEntries()).toEqual([]);
    for (const s of [cluster.subnet.prefix]) expect((await natRulesMatching('')).filter((l) => l.includes(`${s}.`))).toEqual([]);
  }, 240_000);
});

// podnet as containerd's network backend, end to end: a private containerd 1.6 whose CNI conf
// dirs hold only a podnet-cni conflist, a real podnetd serving its CNI door (started where it
// sees containerd's CNI_NETNS bind mounts: Containerd.backendCommand), crictl driving pods.
// runp → the IP of podnet's network inside the pod's netns, a NAD attachment by annotation,
// port mappings through portmap, a runtime handler's own network, the operator CLI showing
// runtime-owned namespaces; stopp/rmp release everything; hot-plug of a running door pod through
// the CLI (podnet attach|detach over the CRI socket) and through /delegate (as
// multus-dynamic-networks-controller calls it); kill -9 of podnetd during a burst of runp,
// restart, stopp/rmp of everything: nothing leaked.
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/cni/result.js';
import { SandboxStore } from '../../src/engine/store.js';
import { b64, http } from '../cnidoor/door.js';
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
  bridge: string;
}

describe.skipIf(missing !== undefined)('containerd → podnet-cni → podnetd (the engine)', () => {
  let root: string;
  let c: Containerd;
  let d: Daemon;
  const pids: number[] = [];
  const cluster: Net = { name: `door-${Math.random().toString(16).slice(2, 8)}`, subnet: uniqueSubnet(), dataDir: '', bridge: '' };
  const gold: Net = { name: `gold-${Math.random().toString(16).slice(2, 8)}`, subnet: uniqueSubnet(), dataDir: '', bridge: '' };
  const storage: Net = { name: 'storage', subnet: uniqueSubnet(), dataDir: '', bridge: '' };
  // The network a /delegate call carries (no NAD: its config is in the call).
  const dyn: Net = { name: `dyn-${Math.random().toString(16).slice(2, 8)}`, subnet: uniqueSubnet(), dataDir: '', bridge: '' };

  beforeAll(async () => {
    root = await newRoot();
    for (const n of [cluster, gold, storage, dyn]) {
      n.dataDir = join(root, `ipam-${n.name}`);
      n.bridge = uniqueBridge();
    }
    // podnetd's networks: the cluster network (with portmap) and the gold handler's own.
    const goldDir = join(root, 'net-gold.d');
    await mkdir(goldDir);
    await writeFile(join(goldDir, '10-gold.conflist'), bridgeConflist(gold.name, { bridge: gold.bridge, subnet: gold.subnet.subnet, dataDir: gold.dataDir }));
    // A NetworkAttachmentDefinition file for the annotation's net1.
    const nadDir = join(root, 'attachments.d');
    await mkdir(nadDir);
    const storageConf = JSON.parse(bridgeConflist(storage.name, { bridge: storage.bridge, subnet: storage.subnet.subnet, dataDir: storage.dataDir, isGateway: false })) as Record<string, unknown>;
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
      confFiles: { '10-cluster.conflist': bridgeConflist(cluster.name, { bridge: cluster.bridge, subnet: cluster.subnet.subnet, dataDir: cluster.dataDir, portmap: true }) },
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

  it('a door pod gets and loses attachments through the CLI (podnet attach|networks|detach) and through /delegate; stopp/rmp leave nothing', async () => {
    const podFile = await c.podConfigFile({ name: 'web-1', namespace: 'shop', uid: 'uid-web-1' });
    const id = (await c.crictlOk(['runp', podFile])).trim();
    const [rec] = await records();
    expect(rec).toMatchObject({ id, door: 'cni', netnsOwner: 'runtime', phase: 'ready' });
    // The pod's namespace as containerd mounted it (CNI_NETNS), opened from inside its mount namespace.
    const inPod = async (args: string[]): Promise<string> => {
      const [cmd, argv] = c.mountNsCommand('nsenter', [`--net=${rec.netnsPath}`, 'ip', '-j', ...args]);
      const r = await execa(cmd, argv, { reject: false });
      if (r.exitCode !== 0) throw new Error(`ip ${args.join(' ')} in pod ${id}: ${String(r.stderr)}`);
      return String(r.stdout);
    };
    const links = async (): Promise<string[]> => (JSON.parse(await inPod(['link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
    const v4 = async (ifName: string): Promise<string[]> =>
      (JSON.parse(await inPod(['-4', 'addr', 'show', 'dev', ifName])) as Array<{ addr_info: Array<{ local: string }> }>).flatMap((l) => l.addr_info.map((a) => a.local));
    // Host ends of the pod's veths on a network's bridge.
    const bridgePorts = async (n: Net): Promise<string[]> => JSON.parse(String((await execa('ip', ['-j', 'link', 'show', 'master', n.bridge], { reject: false })).stdout || '[]')) as string[];
    expect(await links()).toEqual(['eth0', 'lo']);

    // Through the CLI, against podnetd's CRI socket: the CNI door pod's id is containerd's sandbox id.
    const podnet = async (args: string[]) => execa(process.execPath, [join(REPO_ROOT, 'bin', 'podnet'), ...args, '--socket', d.socket], { reject: false });
    const attached = await podnet(['attach', id.slice(0, 12), 'storage@net1']);
    expect(attached.exitCode, String(attached.stderr)).toBe(0);
    const entry = JSON.parse(String(attached.stdout)) as { name: string; interface: string; ips: string[] };
    expect(entry).toMatchObject({ name: 'shop/storage', interface: 'net1' });
    const [net1] = await v4('net1');
    expect(inSubnet(net1, storage.subnet), net1).toBe(true);
    expect(entry.ips.map((a) => a.split('/')[0])).toContain(net1);
    expect(await allocations(storage)).toEqual([net1]);
    expect(await links()).toEqual(['eth0', 'lo', 'net1']);

    // Through /delegate, as multus-dynamic-networks-controller sends it: one network's config.
    const dynConf = { cniVersion: '1.0.0', name: dyn.name, type: 'bridge', bridge: dyn.bridge, isGateway: false, ipMasq: false, ipam: { type: 'host-local', dataDir: dyn.dataDir, ranges: [[{ subnet: dyn.subnet.subnet }]] } };
    const env = (command: 'ADD' | 'DEL') => ({
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: rec.netnsPath,
      CNI_IFNAME: 'dyn0',
      CNI_PATH: PLUGIN_DIRS.join(':'),
      CNI_ARGS: `IgnoreUnknown=true;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=${id};K8S_POD_UID=uid-web-1`,
    });
    const add = await http(d.cniSocket, 'POST', '/delegate', { env: env('ADD'), config: b64(dynConf), interfaceAttributes: { 'cni-args': { origin: 'dynamic-networks' } } });
    expect(add.status, add.body).toBe(200);
    const result = (JSON.parse(add.body) as { Result: Result }).Result;
    const dynIp = (result.ips ?? []).map((i) => i.address.split('/')[0]);
    expect(dynIp).toHaveLength(1);
    expect(inSubnet(dynIp[0], dyn.subnet), dynIp[0]).toBe(true);
    expect(await v4('dyn0')).toEqual(dynIp);
    expect(await allocations(dyn)).toEqual(dynIp);
    expect(await links()).toEqual(['dyn0', 'eth0', 'lo', 'net1']);
    expect(await bridgePorts(storage)).toHaveLength(1);
    expect(await bridgePorts(dyn)).toHaveLength(1);
    expect((await records())[0].attachments.find((a) => a.ifName === 'dyn0')?.cniArgs).toEqual([['origin', 'dynamic-networks']]);

    // `podnet networks` lists the live set of the door pod, hot-plugged ones included.
    const listed = await podnet(['networks', id]);
    expect(listed.exitCode, String(listed.stderr)).toBe(0);
    expect((JSON.parse(String(listed.stdout)) as Array<{ interface: string }>).map((n) => n.interface)).toEqual(['eth0', 'net1', 'dyn0']);

    // Both lose their attachment; their IPs are released.
    const detached = await podnet(['detach', id, 'net1']);
    expect(detached.exitCode, String(detached.stderr)).toBe(0);
    expect(await links()).toEqual(['dyn0', 'eth0', 'lo']);
    expect(await allocations(storage)).toEqual([]);
    const del = await http(d.cniSocket, 'POST', '/delegate', { env: env('DEL'), config: b64(dynConf) });
    expect(del.status, del.body).toBe(200);
    expect(await links()).toEqual(['eth0', 'lo']);
    expect(await allocations(dyn)).toEqual([]);
    // DEL again is done already (CNI DEL is idempotent).
    expect((await http(d.cniSocket, 'POST', '/delegate', { env: env('DEL'), config: b64(dynConf) })).status).toBe(200);
    expect((JSON.parse(String((await podnet(['networks', id])).stdout)) as Array<{ interface: string }>).map((n) => n.interface)).toEqual(['eth0']);
    expect(await bridgePorts(storage)).toEqual([]);
    expect(await bridgePorts(dyn)).toEqual([]);

    // One more attachment left on the pod: stopp tears it down with the rest.
    expect((await podnet(['attach', id, 'storage'])).exitCode).toBe(0);
    expect(await links()).toEqual(['eth0', 'lo', 'net1']);
    await c.crictlOk(['stopp', id]);
    await c.crictlOk(['rmp', id]);
    expect(await records()).toEqual([]);
    for (const n of [cluster, storage, dyn]) {
      expect(await allocations(n), n.name).toEqual([]);
      expect(await bridgePorts(n), n.bridge).toEqual([]);
    }
    expect(await cacheEntries()).toEqual([]);
    const delegated = d.logs.filter((l) => l['door'] === 'cni' && l['route'] === '/delegate');
    expect(delegated.map((l) => l['outcome'])).toEqual(['OK', 'OK', 'OK']);
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

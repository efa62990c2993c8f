// What a real containerd sends through the real podnet-cni shim: containerd 1.6 with a
// podnet-cni conflist, the door served by a recording backend (this is a protocol test: the
// engine behind the door is not involved, so the pod gets the backend's canned result).
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AttachmentCall } from '../../src/cnidoor/backend.js';
import { REPO_ROOT } from '../e2e/harness.js';
import { Cleanup, PLUGIN_DIRS, sh, tmpDir } from '../helpers/env.js';
import { startDoor } from '../cnidoor/door.js';
import { Containerd, containerdMissing } from './harness.js';

const SHIM_DIR = join(REPO_ROOT, 'dist', 'libexec');
const missing = containerdMissing() ?? (existsSync(join(SHIM_DIR, 'podnet-cni')) ? undefined : 'podnet-cni is not built (make build)');
if (missing) console.warn(`skipping the containerd wire test: ${missing}`);

const cleanup = new Cleanup();
afterEach(async () => {
  expect(await cleanup.run()).toEqual([]);
});

describe.skipIf(missing !== undefined)('containerd → podnet-cni → the CNI door', () => {
  it('runp/stopp/rmp arrive as typed ADD and DEL calls, containerd casing included', async () => {
    const door = await startDoor(cleanup);
    const root = cleanup.dir(await tmpDir('podnet-wire-'));
    const confDir = join(root, 'net.d');
    await mkdir(confDir);
    const caps = { portMappings: true, bandwidth: true, dns: true, 'io.kubernetes.cri.pod-annotations': true };
    await writeFile(
      join(confDir, '10-podnet.conflist'),
      JSON.stringify({ cniVersion: '1.0.0', name: 'podnet', plugins: [{ type: 'podnet-cni', socket: door.socket, network: 'blue', capabilities: caps }] }),
    );
    const c = await Containerd.start({ confDir, binDirs: [SHIM_DIR, ...PLUGIN_DIRS] });
    cleanup.push(() => c.stop(), 'stop the private containerd');
    const podFile = await c.podConfigFile({
      name: 'web-0',
      namespace: 'shop',
      uid: 'uid-web-0',
      annotations: { 'k8s.v1.cni.cncf.io/networks': 'storage@stor0', 'kubernetes.io/ingress-bandwidth': '10M' },
      portMappings: [{ container_port: 80, host_port: 8080 }, { container_port: 53, host_port: 5353, protocol: 'UDP' }],
    });
    const id = (await c.crictlOk(['runp', podFile])).trim();
    expect((await c.inspectPod(id)).status.network?.ip).toBe('10.200.0.5');

    const adds = door.backend.calls.filter((r) => r.method === 'add');
    expect(adds).toHaveLength(1);
    const add = adds[0].call as AttachmentCall;
    expect(add).toMatchObject({ command: 'ADD', containerID: id, ifName: 'eth0', cniVersion: '1.0.0', configName: 'podnet', network: 'blue' });
    expect(add.pod).toEqual({ namespace: 'shop', name: 'web-0', uid: 'uid-web-0', infraContainerID: id });
    expect(add.netns.startsWith(join(c.stateDir, 'io.containerd.grpc.v1.cri', 'netns'))).toBe(true);
    // CNI_NETNS is a bind mount in containerd's private mount namespace only: a backend must run
    // there (mountNsCommand) to open it; from the host the path is a plain empty file.
    const [cmd, args] = c.mountNsCommand('nsenter', [`--net=${add.netns}`, 'true']);
    expect((await sh(cmd, args)).exitCode).toBe(0);
    expect((await sh('nsenter', [`--net=${add.netns}`, 'true'])).exitCode).not.toBe(0);
    expect(add.runtimeConfig.portMappings).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' },
      { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '' },
    ]);
    // containerd's Go casing (IngressRate...), its 0/0 for the unset egress dropped.
    expect(add.runtimeConfig.bandwidth).toEqual({ ingressRate: 10_000_000, ingressBurst: 4294967295 });
    expect(add.runtimeConfig.podAnnotations.get('k8s.v1.cni.cncf.io/networks')).toBe('storage@stor0');

    await c.crictlOk(['stopp', id]);
    await c.crictlOk(['rmp', id]);
    const dels = door.backend.calls.filter((r) => r.method === 'del').map((r) => r.call as AttachmentCall);
    expect(dels.length).toBeGreaterThanOrEqual(1);
    for (const d of dels) expect(d).toMatchObject({ containerID: id, ifName: 'eth0', pod: { namespace: 'shop', name: 'web-0' } });
    // Every request the door logged succeeded.
    expect(door.logs.filter((l) => l['route'] === '/cni').every((l) => l['outcome'] === 'OK')).toBe(true);
  });
});

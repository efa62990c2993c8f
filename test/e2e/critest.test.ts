// The CRI validation suite (critest, cri-tools v1.32.0) against the built daemon on a real socket
// with a real bridge network: the pod sandbox, idempotence and runtime info specs. Specs that need
// containers, images, streaming, SELinux/AppArmor, DNS, hostname, port mapping or sysctls belong to
// the container runtime half and are skipped (README: "critest").
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findCriTool, missingToolMessage } from '../helpers/cri-tools.js';
import { writeFile } from 'node:fs/promises';
import { disposeAll, expectNothingLeft, newRoot, startDaemon, testNetwork } from './harness.js';

const CRITEST = findCriTool('critest');
if (!CRITEST) console.warn(missingToolMessage('critest'));

export const CRITEST_FOCUS = 'PodSandbox|runtime should return|StopPodSandbox|RemovePodSandbox';
export const CRITEST_SKIP = 'sysctls|[Cc]ontainer|[Ii]mage|[Ss]treaming|SELinux|AppArmor|DNS|hostname|port mapping|Security Context';

/** What the selection must include: the pod sandbox lifecycle, its idempotence and runtime info. */
const EXPECTED = [
  'PodSandbox runtime should support basic operations on PodSandbox runtime should support running PodSandbox',
  'PodSandbox runtime should support basic operations on PodSandbox runtime should support stopping PodSandbox',
  'PodSandbox runtime should support basic operations on PodSandbox runtime should support removing PodSandbox',
  'Idempotence StopPodSandbox should not return an error if not found',
  'Idempotence StopPodSandbox should not return an error if already stopped',
  'Idempotence RemovePodSandbox should not return an error if not found',
  'Runtime info runtime should support returning runtime info runtime should return version info',
  'Runtime info runtime should support returning runtime info runtime should return runtime conditions',
];

interface SpecReport {
  ContainerHierarchyTexts: string[] | null;
  LeafNodeText: string;
  LeafNodeType: string;
  State: string;
  Failure?: { Message?: string };
}

/** Ginkgo's JSON report: one suite, its spec reports (the suite nodes included). */
async function specs(reportFile: string): Promise<Array<{ name: string; state: string; failure: string }>> {
  const [suite] = JSON.parse(await readFile(reportFile, 'utf8')) as Array<{ SpecReports: SpecReport[] }>;
  return (suite?.SpecReports ?? [])
    .filter((s) => s.LeafNodeType === 'It')
    .map((s) => ({
      name: [...(s.ContainerHierarchyTexts ?? []), s.LeafNodeText].join(' ').replace(/^\[k8s\.io\] /, ''),
      state: s.State,
      failure: s.Failure?.Message ?? '',
    }));
}

let ipForwardBefore = '';

beforeAll(async () => {
  ipForwardBefore = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
});

afterAll(async () => {
  await disposeAll();
  if (ipForwardBefore) await writeFile('/proc/sys/net/ipv4/ip_forward', ipForwardBefore);
});

describe('critest against podnetd', () => {
  it('passes every pod sandbox, idempotence and runtime info spec', { timeout: 240_000 }, async (ctx) => {
    if (!CRITEST) return ctx.skip(missingToolMessage('critest'));
    const root = await newRoot();
    const net = testNetwork(root);
    const d = await startDaemon({ root, confFiles: { '10-net.conflist': net.text } });
    const endpoint = `unix://${d.socket}`;
    const args = ['--runtime-endpoint', endpoint, '--image-endpoint', endpoint, '--ginkgo.focus', CRITEST_FOCUS, '--ginkgo.skip', CRITEST_SKIP, '--ginkgo.no-color'];

    // The selection itself, without running anything: it must hold exactly the specs we mean.
    const planned = join(root, 'critest-dry-run.json');
    const dry = await execa(CRITEST, [...args, '--ginkgo.dry-run', `--ginkgo.json-report=${planned}`], { reject: false, cwd: root });
    expect(dry.exitCode, String(dry.stdout)).toBe(0);
    const selected = (await specs(planned)).filter((s) => s.state === 'passed').map((s) => s.name.replace(/ \[Conformance\]$/, ''));
    expect(selected.sort()).toEqual([...EXPECTED].sort());

    const report = join(root, 'critest.json');
    const r = await execa(CRITEST, [...args, `--ginkgo.json-report=${report}`], { reject: false, cwd: root, timeout: 200_000 });
    const ran = (await specs(report)).filter((s) => s.state !== 'skipped');
    const failed = ran.filter((s) => s.state !== 'passed');
    expect(failed, `${String(r.stdout).slice(-4000)}`).toEqual([]);
    expect(ran.map((s) => s.name.replace(/ \[Conformance\]$/, '')).sort()).toEqual([...EXPECTED].sort());
    expect(r.exitCode).toBe(0);
    // critest removes its own pods; the daemon has nothing left.
    expect(await d.rpc.list()).toEqual([]);
    expect(await d.netnsFiles()).toEqual([]);
  });
});

describe('leaks', () => {
  it('left no namespace mounts, bridges or processes behind', async (ctx) => {
    if (!CRITEST) return ctx.skip(missingToolMessage('critest'));
    await expectNothingLeft();
  });
});

// The CNI door's probes against a real podnetd: /readyz 200 while it serves, 500 from SIGTERM
// until it exits (a RunPodSandbox whose plugin hangs keeps it draining), /healthz 200 all along;
// a new /cni call in the drain is told to try again later. Then the client's deadline ends the
// hung plugin, the daemon rolls the pod back before it exits 0, and nothing is left.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { RunPodSandboxRequest } from '../../src/gen/runtime/v1/api.js';
import { b64, cniEnv, http, shimStdin } from '../cnidoor/door.js';
import { pidAlive, TEST_PLUGIN_PATH, waitFor } from '../helpers/env.js';
import { expectNothingLeft, listDir, newRoot, podConfig, rpcError, startDaemon, testNetwork } from './harness.js';

afterAll(async () => {
  await expectNothingLeft();
}, 60_000);

describe('the CNI door\'s /readyz and /healthz through a SIGTERM of podnetd', () => {
  it('/readyz 200 before, 500 between SIGTERM and exit while a hung ADD drains; /healthz 200; the daemon exits, nothing left', async () => {
    const root = await newRoot();
    const net = testNetwork(root);
    const pidFile = join(root, 'hang.pids');
    const list = JSON.parse(net.text) as { plugins: Array<Record<string, unknown>> };
    list.plugins.push({ type: 'e2e-hang-add', pidFile });
    const d = await startDaemon({ root, confFiles: { '10-e2e.conflist': JSON.stringify(list) }, cni: { bin_dirs: [...TEST_PLUGIN_PATH] }, pluginTimeout: '300s' });
    const probe = async (method: string, path: string): Promise<number> => (await http(d.cniSocket, method, path, method === 'POST' ? 'null' : undefined)).status;

    expect(await waitFor(async () => (await probe('GET', '/readyz')) === 200, 15_000)).toBe(true);
    // multus-shim's probe: POST "null".
    expect(await probe('POST', '/readyz')).toBe(200);
    expect(await probe('GET', '/healthz')).toBe(200);

    // A RunPodSandbox whose last plugin hangs on ADD: the daemon cannot finish its drain until the
    // client's deadline cancels it (the plugin timeout is far beyond).
    const pending = rpcError(d.rpc.call('runPodSandbox', RunPodSandboxRequest.fromPartial({ config: podConfig() }), 10_000));
    expect(await waitFor(() => existsSync(pidFile), 15_000)).toBe(true);
    const hung = (await readFile(pidFile, 'utf8')).trim().split(/\s+/).map(Number);
    expect(hung).toHaveLength(2);

    const pid = d.pid;
    process.kill(pid, 'SIGTERM');
    expect(await waitFor(() => d.logs.some((l) => l['msg'] === 'shutting down: finishing in-flight requests'), 10_000)).toBe(true);
    // The hung plugin still runs, so the daemon is still draining.
    expect(await pidAlive(hung[0])).toBe(true);
    expect(d.running).toBe(true);
    expect(await probe('GET', '/readyz')).toBe(500);
    expect(await probe('POST', '/readyz')).toBe(500);
    expect(await probe('GET', '/healthz')).toBe(200);
    // A new call in the drain: CNI code 11, try again later.
    const late = await http(d.cniSocket, 'POST', '/cni', { env: cniEnv('ADD'), config: b64(shimStdin()) });
    expect(late.status).toBe(400);
    expect(JSON.parse(late.body)).toMatchObject({ code: 11, msg: 'podnetd is shutting down' });

    // The deadline passes: the daemon kills the hung plugin (its child too), rolls the pod back and exits 0.
    const err = await pending;
    expect([status.DEADLINE_EXCEEDED, status.CANCELLED]).toContain(err.code);
    expect(await waitFor(() => !d.running, 30_000)).toBe(true);
    expect(await d.stop()).toBe(0);
    expect(d.logs.some((l) => l['msg'] === 'podnetd stopped')).toBe(true);
    for (const p of [pid, ...hung]) expect(await pidAlive(p), `pid ${p}`).toBe(false);
    expect(existsSync(d.cniSocket)).toBe(false);
    // The canceled RunPodSandbox was rolled back before the daemon exited.
    expect((await listDir(join(d.ipamDir, net.name))).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))).toEqual([]);
    expect(await d.cacheEntries()).toEqual([]);
    expect((await listDir(join(d.stateDir, 'sandboxes'))).filter((f) => f.endsWith('.json'))).toEqual([]);
    expect((await d.netnsFiles()).filter((f) => f.startsWith('cni-'))).toEqual([]);
  }, 90_000);
});

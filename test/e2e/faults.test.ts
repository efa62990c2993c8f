// Fault injection against the REAL daemon process: podnetd (dist/) spawned by the e2e harness,
// driven over its unix socket with the generated grpc client, running the real bridge and
// host-local plugins (plus the small e2e-* fault plugins of test/plugins).
//
// After every fault the same question is asked: is anything left behind? A netns file, an nsfs
// mount, a host-local allocation, a CNI cache entry or a sandbox record that nobody owns is a
// leak. Every directory is a temp dir, every bridge and subnet is unique; the harness's cleanup
// stack removes daemons (by PID), bridges and temp roots even when a test fails.
import { randomInt } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { PodSandboxState, RunPodSandboxRequest } from '../../src/gen/runtime/v1/api.js';
import { pidAlive, randomHex, sh, shOk, TEST_PLUGIN_PATH, waitFor } from '../helpers/env.js';
import {
  disposeAll,
  listDir,
  newRoot,
  nsfsMountsUnder,
  onCleanup,
  podConfig,
  rpcError,
  startDaemon,
  testNetwork,
  type Daemon,
  type DaemonOptions,
  type TestNetwork,
} from './harness.js';

const CONF = '10-e2e.conflist';
const IPV4_RE = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

afterEach(async () => {
  const errors = await disposeAll();
  expect(errors.map((e) => e.message)).toEqual([]);
});

// ---- helpers --------------------------------------------------------------------------------------

/** The network's conflist with extra plugins appended to the chain (after bridge). */
function withPlugins(net: TestNetwork, extra: Array<Record<string, unknown>>): string {
  const list = JSON.parse(net.text) as { plugins: Array<Record<string, unknown>> };
  list.plugins.push(...extra);
  return JSON.stringify(list, null, 2);
}

/** The conflist with the bridge plugin's fields patched (same network name and subnet). */
function patchBridge(net: TestNetwork, patch: Record<string, unknown>): string {
  const list = JSON.parse(net.text) as { plugins: Array<Record<string, unknown>> };
  Object.assign(list.plugins[0], patch);
  return JSON.stringify(list, null, 2);
}

/** A random 10.<100-250>.<4k>.0/22 network for the 200-pod test (room for 1000 pods without reuse). */
function subnet22(): string {
  return `10.${randomInt(100, 251)}.${randomInt(0, 64) * 4}.0/22`;
}

/** A daemon on a fresh root with one bridge network, fault plugins on the plugin path. */
async function daemonWith(
  conflist: (net: TestNetwork, root: string) => string,
  opts: DaemonOptions = {},
  netOpts: { subnet?: string } = {},
): Promise<{ d: Daemon; net: TestNetwork; root: string }> {
  const root = await newRoot();
  let net = testNetwork(root);
  if (netOpts.subnet) {
    const list = JSON.parse(net.text) as { plugins: Array<{ ipam: { ranges: Array<Array<{ subnet: string }>> } }> };
    list.plugins[0].ipam.ranges = [[{ subnet: netOpts.subnet }]];
    net = { ...net, text: JSON.stringify(list, null, 2) };
  }
  const d = await startDaemon({
    root,
    confFiles: { [CONF]: conflist(net, root) },
    ...opts,
    cni: { bin_dirs: [...TEST_PLUGIN_PATH], ...opts.cni },
  });
  return { d, net, root };
}

interface Leaks {
  netns: string[];
  mounts: string[];
  allocations: string[];
  cache: string[];
  records: string[];
  /** The daemon's ledger of namespaces it made (<state_dir>/netns). */
  ledger: string[];
}

/** Everything a sandbox can leave on disk, for one daemon and one network. */
async function leaks(d: Daemon, network: string): Promise<Leaks> {
  return {
    netns: (await listDir(d.netnsDir)).filter((n) => n.startsWith('cni-')),
    mounts: await nsfsMountsUnder(d.root),
    allocations: (await listDir(join(d.ipamDir, network))).filter((n) => IPV4_RE.test(n)),
    cache: await listDir(join(d.cacheDir, 'results')),
    records: (await listDir(join(d.stateDir, 'sandboxes'))).filter((n) => n.endsWith('.json') || n.includes('.tmp-')),
    ledger: await listDir(join(d.stateDir, 'netns')),
  };
}

const NO_LEAKS: Leaks = { netns: [], mounts: [], allocations: [], cache: [], records: [], ledger: [] };

/** Polls until nothing is left (cleanup may still be running in the daemon), then asserts it. */
async function expectNoLeaks(d: Daemon, network: string, timeoutMs = 15_000, label = 'leaked'): Promise<void> {
  let last: Leaks = NO_LEAKS;
  await waitFor(async () => {
    last = await leaks(d, network);
    return Object.values(last).every((v: string[]) => v.length === 0);
  }, timeoutMs, 100);
  expect(last, label).toEqual(NO_LEAKS);
}

/** Runs fn(i) for i in [0, count) with at most `width` at once; stops starting new ones once stop() is true. */
async function pool(count: number, width: number, fn: (i: number) => Promise<void>, stop: () => boolean = () => false): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (!stop() && next < count) await fn(next++);
  };
  await Promise.all(Array.from({ length: width }, worker));
}

/** Processes still working for this daemon's sandboxes: plugins (CNI_NETNS under our netns dir) and unshare. */
async function straysOf(d: Daemon): Promise<number[]> {
  const out: number[] = [];
  for (const name of await listDir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      const [env, cmd] = await Promise.all([readFile(`/proc/${pid}/environ`, 'latin1'), readFile(`/proc/${pid}/cmdline`, 'latin1')]);
      if (env.includes(`CNI_NETNS=${d.netnsDir}/`) || cmd.includes(`${d.netnsDir}/cni-`)) {
        if (await pidAlive(pid)) out.push(pid);
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/** host-local allocation files of a network: ip -> content ("<containerID>\r\n<ifname>"). */
async function allocationsOf(d: Daemon, network: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const dir = join(d.ipamDir, network);
  for (const n of await listDir(dir)) if (IPV4_RE.test(n)) out.set(n, await readFile(join(dir, n), 'utf8'));
  return out;
}

async function networkReady(d: Daemon): Promise<boolean> {
  const res = await d.rpc.runtimeStatus();
  return res.status?.conditions.find((c) => c.type === 'NetworkReady')?.status === true;
}

function gcDoneLines(d: Daemon): Array<Record<string, unknown>> {
  return d.logs.filter((l) => l['msg'] === 'cni garbage collection done');
}

/** Stop + Remove every sandbox the daemon lists, `width` at a time; returns the failures. */
async function stopAndRemoveAll(d: Daemon, width = 8): Promise<string[]> {
  const items = await d.rpc.list();
  const errors: string[] = [];
  await pool(items.length, width, async (i) => {
    const id = items[i].id;
    try {
      await d.rpc.stop(id);
      await d.rpc.remove(id);
    } catch (err) {
      errors.push((err as Error).message);
    }
  });
  return errors;
}

// ---- the tests ------------------------------------------------------------------------------------

/** Mounts a tmpfs over dir (unmounted at cleanup); returns an idempotent unmount. */
async function mountTmpfs(dir: string, options: string): Promise<() => Promise<void>> {
  await shOk('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  let mounted = true;
  const unmount = async (): Promise<void> => {
    if (!mounted) return;
    await shOk('umount', [dir]);
    mounted = false;
  };
  onCleanup(unmount, `umount ${dir}`);
  return unmount;
}

describe('podnetd under faults (real daemon, real plugins)', () => {
  it('1. kill -9 during a burst of RunPodSandbox: every id the client got survives, nothing leaks', { timeout: 240_000 }, async () => {
    const ROUNDS = 10;
    const PODS = 50;
    for (let round = 0; round < ROUNDS; round++) {
      const { d, net } = await daemonWith((n) => n.text);
      const got: string[] = [];
      const earlyErrors: string[] = [];
      let killed = false;
      const delay = randomInt(50, 1501);
      const burst = pool(
        PODS,
        8,
        async () => {
          try {
            got.push(await d.rpc.run(podConfig()));
          } catch (err) {
            // Failures after the kill are the point; one before it is a bug.
            if (!killed) earlyErrors.push((err as Error).message);
          }
        },
        () => killed,
      );
      await sleep(delay);
      process.kill(d.pid, 'SIGKILL');
      killed = true;
      await burst;
      await d.kill();
      expect(earlyErrors, `round ${round}: RPC errors before the kill`).toEqual([]);
      // Plugins run in their own process group and outlive the daemon. Odd rounds let them finish
      // before the restart (as systemd would, waiting for the unit's cgroup to empty); even rounds
      // restart at once, so recovery itself must deal with plugins still running ADD.
      const waited = round % 2 === 1;
      if (waited) {
        expect(await waitFor(async () => (await straysOf(d)).length === 0, 20_000, 100), `round ${round}: plugins of the killed daemon still running`).toBe(true);
      }

      // Namespace files the crash left unmounted (created, but killed before the nsfs bind mount).
      const mounted = new Set(await nsfsMountsUnder(d.root));
      const halfMade = (await listDir(d.netnsDir)).filter((n) => n.startsWith('cni-') && !mounted.has(join(d.netnsDir, n)));
      await d.spawn();
      const listed = new Set((await d.rpc.list()).map((p) => p.id));
      const missing = got.filter((id) => !listed.has(id));
      expect(missing, `round ${round} (kill after ${delay} ms, ${got.length} ids): ids lost by the restart`).toEqual([]);
      const why = `round ${round} (kill after ${delay} ms, ${waited ? 'waited for' : 'did not wait for'} orphaned plugins; netns files left unmounted by the crash: [${halfMade.join(', ')}])`;
      expect(await waitFor(async () => (await straysOf(d)).length === 0, 10_000, 100), `${why}: plugins of the killed daemon still running after recovery`).toBe(true);
      expect(await stopAndRemoveAll(d), `${why}: Stop/Remove failures`).toEqual([]);
      expect(await d.rpc.list()).toEqual([]);
      await expectNoLeaks(d, net.name, 15_000, `${why}: leaked`);
      // Next round on fresh dirs; this one's daemon, bridge and root go now.
      expect((await disposeAll()).map((e) => e.message)).toEqual([]);
    }
  });

  it('2. a hanging plugin: DEADLINE_EXCEEDED after plugin_timeout, hung processes killed, nothing left', async () => {
    let pidFile = '';
    const { d, net } = await daemonWith(
      (n, r) => {
        pidFile = join(r, 'hang.pids');
        return withPlugins(n, [{ type: 'e2e-hang-add', pidFile }]);
      },
      { pluginTimeout: '2s' },
    );
    const started = Date.now();
    const err = await rpcError(d.rpc.run(podConfig()));
    expect(err.code, err.message).toBe(status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(30_000);
    const pids = (await readFile(pidFile, 'utf8')).trim().split(/\s+/).map(Number);
    expect(pids).toHaveLength(2);
    expect(await waitFor(async () => !(await pidAlive(pids[0])) && !(await pidAlive(pids[1])), 5000)).toBe(true);
    await expectNoLeaks(d, net.name);
    expect(await d.rpc.list()).toEqual([]);
  });

  it('3. client gives up mid-ADD: the daemon cleans up on its own, nothing left', async () => {
    const { d, net } = await daemonWith((n) => withPlugins(n, [{ type: 'e2e-passthrough', sleepSeconds: 3 }]));
    const req = RunPodSandboxRequest.fromPartial({ config: podConfig() });
    const err = await rpcError(d.rpc.call('runPodSandbox', req, 1000));
    expect([status.DEADLINE_EXCEEDED, status.CANCELLED]).toContain(err.code);
    await expectNoLeaks(d, net.name, 15_000);
    expect(await d.rpc.list()).toEqual([]);
    // The daemon logged the cancel and is still serving.
    expect(await waitFor(() => d.logs.some((l) => l['rpc'] === 'RunPodSandbox' && l['outcome'] !== undefined && l['outcome'] !== 'OK'), 10_000)).toBe(true);
    const id = await d.rpc.run(podConfig({}));
    expect((await d.rpc.status(id)).status?.state).toBe(PodSandboxState.SANDBOX_READY);
  });

  it('4. 200 Run+Stop+Remove cycles while the conflist is rewritten: unique IPs, no errors, nothing left', { timeout: 180_000 }, async () => {
    const { d, net } = await daemonWith((n) => n.text, {}, { subnet: subnet22() });
    const conf = join(d.confDir, CONF);
    const broken = join(d.confDir, '50-broken.conflist');
    let done = false;
    let rewrites = 0;
    const rewriter = (async () => {
      while (!done) {
        rewrites++;
        // Equivalent config: same name and subnet, hairpinMode flipping. Written in place (not
        // atomically), so the daemon sometimes reads a half-written file and must keep the last good.
        await writeFile(conf, patchBridge(net, { hairpinMode: rewrites % 2 === 0 }));
        if (rewrites % 5 === 0) await writeFile(broken, '{"cniVersion": "1.0.0", "name": ');
        if (rewrites % 5 === 1) await rm(broken, { force: true });
        await sleep(200);
      }
      await rm(broken, { force: true });
    })();
    const ips: string[] = [];
    const errors: string[] = [];
    try {
      await pool(200, 16, async () => {
        try {
          const id = await d.rpc.run(podConfig());
          const ip = (await d.rpc.status(id)).status?.network?.ip ?? '';
          ips.push(ip);
          await d.rpc.stop(id);
          await d.rpc.remove(id);
        } catch (err) {
          errors.push((err as Error).message);
        }
      });
    } finally {
      done = true;
      await rewriter;
    }
    expect(errors).toEqual([]);
    expect(rewrites).toBeGreaterThan(3);
    expect(ips).toHaveLength(200);
    expect(ips.every((ip) => IPV4_RE.test(ip))).toBe(true);
    expect(new Set(ips).size).toBe(200);
    expect(await d.rpc.list()).toEqual([]);
    await expectNoLeaks(d, net.name);
  });

  it('5. conf dir deleted then re-created: NetworkReady false, then true without a restart; a pod runs', async () => {
    const { d, root } = await daemonWith((n) => n.text);
    expect(await networkReady(d)).toBe(true);
    await rm(d.confDir, { recursive: true, force: true });
    expect(await waitFor(async () => !(await networkReady(d)), 10_000, 100), 'NetworkReady stays true after the conf dir was deleted').toBe(true);
    const refused = await rpcError(d.rpc.run(podConfig()));
    expect(refused.code).toBe(status.FAILED_PRECONDITION);

    const net2 = testNetwork(root, { name: `pn-new-${randomHex(6)}` });
    await mkdir(d.confDir);
    await writeFile(join(d.confDir, '20-new.conflist'), net2.text);
    expect(await waitFor(() => networkReady(d), 10_000, 100), 'NetworkReady stays false after the conf dir came back').toBe(true);
    const id = await d.rpc.run(podConfig());
    const ip = (await d.rpc.status(id)).status?.network?.ip ?? '';
    expect(ip.startsWith(`${net2.subnet.prefix}.`), `${ip} in ${net2.subnet.subnet}`).toBe(true);
    await d.rpc.stop(id);
    await d.rpc.remove(id);
    await expectNoLeaks(d, net2.name);
  });

  it('6. netns deleted by hand under a live sandbox: Stop succeeds and releases the IP and cache', async () => {
    const { d, net } = await daemonWith((n) => n.text);
    const id = await d.rpc.run(podConfig());
    const ip = (await d.rpc.status(id)).status?.network?.ip ?? '';
    expect([...(await allocationsOf(d, net.name)).keys()]).toEqual([ip]);
    expect((await d.cacheEntries()).filter((n) => n.startsWith(`${net.name}-`))).toHaveLength(1);
    const nsPath = await d.rpc.netnsPath(id);
    await shOk('umount', [nsPath]);
    await rm(nsPath);
    await d.rpc.stop(id);
    expect((await d.rpc.list()).map((p) => [p.id, p.state])).toEqual([[id, PodSandboxState.SANDBOX_NOTREADY]]);
    expect(await allocationsOf(d, net.name)).toEqual(new Map());
    expect(await d.cacheEntries()).toEqual([]);
    await d.rpc.remove(id);
    await expectNoLeaks(d, net.name);
  });

  describe('7. state dir unwritable: RunPodSandbox fails cleanly, nothing partial', () => {
    /** Asserts a refused RunPodSandbox left nothing, then that the daemon works again once `undo` ran. */
    async function expectCleanRefusal(d: Daemon, network: string, reason: RegExp, allowedInSandboxDir: string[], undo: () => Promise<void>): Promise<void> {
      const err = await rpcError(d.rpc.run(podConfig()));
      expect(err.message).toMatch(reason);
      expect(err.code).not.toBe(status.OK);
      expect(await d.rpc.list()).toEqual([]);
      expect(await listDir(join(d.stateDir, 'sandboxes')), 'partial record files').toEqual(allowedInSandboxDir);
      const l = await leaks(d, network);
      expect({ ...l, records: [] }).toEqual(NO_LEAKS);
      await undo();
      const id = await d.rpc.run(podConfig());
      expect((await d.rpc.status(id)).status?.state).toBe(PodSandboxState.SANDBOX_READY);
      await d.rpc.stop(id);
      await d.rpc.remove(id);
      await expectNoLeaks(d, network);
    }

    it('7a. immutable sandboxes dir (chattr +i, EPERM)', async (ctx) => {
      const { d, net } = await daemonWith((n) => n.text);
      const dir = join(d.stateDir, 'sandboxes');
      const r = await sh('chattr', ['+i', dir]);
      if (r.exitCode !== 0) {
        ctx.skip(`chattr +i not supported here: ${r.stderr.trim()}`);
        return;
      }
      onCleanup(() => shOk('chattr', ['-i', dir]), `chattr -i ${dir}`);
      // Root ignores modes, not the immutable flag: prove writes really fail.
      await expect(writeFile(join(dir, 'probe'), 'x')).rejects.toThrow(/EPERM/);
      await expectCleanRefusal(d, net.name, /EPERM|operation not permitted/i, [], () => shOk('chattr', ['-i', dir]).then(() => undefined));
    });

    it('7b. read-only mount over the sandboxes dir (EROFS)', async () => {
      const { d, net } = await daemonWith((n) => n.text);
      const dir = join(d.stateDir, 'sandboxes');
      const unmount = await mountTmpfs(dir, 'ro,size=1m');
      await expect(writeFile(join(dir, 'probe'), 'x')).rejects.toThrow(/EROFS/);
      await expectCleanRefusal(d, net.name, /EROFS|read-only/i, [], unmount);
    });

    it('7c. disk full under the sandboxes dir (ENOSPC)', async () => {
      const { d, net } = await daemonWith((n) => n.text);
      const dir = join(d.stateDir, 'sandboxes');
      const unmount = await mountTmpfs(dir, 'size=64k');
      await writeFile(join(dir, 'filler'), Buffer.alloc(256 * 1024)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOSPC') throw err;
      });
      const probe = join(dir, 'probe');
      await expect(writeFile(probe, 'x'.repeat(2048))).rejects.toThrow(/ENOSPC/);
      await rm(probe, { force: true });
      await expectCleanRefusal(d, net.name, /ENOSPC|no space/i, ['filler'], unmount);
    });

    it('7d. read-only result cache (EROFS): the cache write fails after the ADDs, which are undone', async () => {
      const { d, net } = await daemonWith((n) => n.text);
      const dir = join(d.cacheDir, 'results');
      await mkdir(dir, { recursive: true });
      const unmount = await mountTmpfs(dir, 'ro,size=1m');
      await expect(writeFile(join(dir, 'probe'), 'x')).rejects.toThrow(/EROFS/);
      await expectCleanRefusal(d, net.name, /EROFS|read-only/i, [], unmount);
    });
  });

  it('8. DEL failure keeps the sandbox NOTREADY with its IP; a later Stop finishes it', async () => {
    let marker = '';
    const { d, net } = await daemonWith((n, r) => {
      marker = join(r, 'fail-del');
      return withPlugins(n, [{ type: 'e2e-passthrough', failDelIfExists: marker }]);
    });
    const id = await d.rpc.run(podConfig());
    const ip = (await d.rpc.status(id)).status?.network?.ip ?? '';
    expect(IPV4_RE.test(ip)).toBe(true);
    await writeFile(marker, '');
    const err = await rpcError(d.rpc.stop(id));
    expect(err.message).toMatch(/marker file exists/);
    expect((await d.rpc.list()).map((p) => [p.id, p.state])).toEqual([[id, PodSandboxState.SANDBOX_NOTREADY]]);
    expect([...(await allocationsOf(d, net.name)).keys()], 'the IP is still held').toEqual([ip]);
    const info = await d.rpc.statusInfo(id);
    expect(String(info['lastError'])).toMatch(/marker file exists/);
    // Remove must not forget a sandbox whose DEL keeps failing.
    await rpcError(d.rpc.remove(id));
    expect((await d.rpc.list()).map((p) => p.id)).toEqual([id]);

    await rm(marker);
    await d.rpc.stop(id);
    expect(await allocationsOf(d, net.name)).toEqual(new Map());
    expect(await d.cacheEntries()).toEqual([]);
    await d.rpc.remove(id);
    expect(await d.rpc.list()).toEqual([]);
    await expectNoLeaks(d, net.name);
  });

  it('9. SIGUSR1 (podnet gc) runs CNI GC: a stale cache entry of a stopped sandbox is DELeted', async () => {
    const { d, net } = await daemonWith((n) => n.text, { top: { gc_interval: '1h' } });
    expect(Number((await readFile(join(d.stateDir, 'podnetd.pid'), 'utf8')).trim())).toBe(d.pid);
    // The start-up GC has run once.
    expect(await waitFor(() => gcDoneLines(d).length >= 1, 10_000)).toBe(true);

    // Fabricate a leak: copy the sandbox's cache entry and host-local allocation before Stop,
    // put them back after (as a DEL that half-failed long ago would have left them).
    const id = await d.rpc.run(podConfig());
    const [cacheName] = (await d.cacheEntries()).filter((n) => n.startsWith(`${net.name}-${id}-`));
    expect(cacheName).toBeDefined();
    const cacheFile = join(d.cacheDir, 'results', cacheName);
    const saved = join(d.root, 'saved-cache');
    await copyFile(cacheFile, saved);
    const allocs = await allocationsOf(d, net.name);
    expect(allocs.size).toBe(1);
    await d.rpc.stop(id);
    expect(await d.cacheEntries()).toEqual([]);
    await copyFile(saved, cacheFile);
    for (const [ip, content] of allocs) await writeFile(join(d.ipamDir, net.name, ip), content);

    const before = gcDoneLines(d).length;
    process.kill(d.pid, 'SIGUSR1');
    expect(await waitFor(() => gcDoneLines(d).length > before, 15_000), 'no "cni garbage collection done" after SIGUSR1').toBe(true);
    const report = gcDoneLines(d)[before];
    expect(report['errors']).toEqual([]);
    expect(report['staleAttachments']).toBe(1);
    expect(await d.cacheEntries()).toEqual([]);
    expect(await allocationsOf(d, net.name)).toEqual(new Map());
    await d.rpc.remove(id);
    await expectNoLeaks(d, net.name);
  });
});

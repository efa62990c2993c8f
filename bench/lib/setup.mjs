// What every mode of the bench needs first: root, plugins, a built dist/, a temp root with a
// snapshot of the daemon, and the bench network.
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CNI_BIN, REPO } from './config.mjs';
import { log, onCleanup } from './cleanup.mjs';
import { makeNetwork } from './network.mjs';
import { initClock, nsfsMountsUnder, run } from './proc.mjs';

const API_JS = join(REPO, 'dist', 'gen', 'runtime', 'v1', 'api.js');
const SERVER_JS = join(REPO, 'dist', 'cri', 'server.js');

/** → {root, snapshot, daemonBin, api, socketAlive, network: {bridge, subnet, netName, net}} */
export async function setupRun() {
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (network namespaces, bridges, iptables)');
  if (!CNI_BIN) throw new Error('bridge/portmap/loopback plugins not found in /opt/cni/bin or /usr/lib/cni (make sysdeps)');
  if (!existsSync(API_JS)) throw new Error(`${API_JS} missing: run make build first`);
  const api = await import(API_JS);
  // podnetd's own socket probe, loaded with the API.
  const { socketAlive } = await import(SERVER_JS);
  await initClock();
  const root = await mkdtemp(join(tmpdir(), 'podnet-bench-'));
  onCleanup(`rm -r ${root}`, async () => {
    for (const m of await nsfsMountsUnder(root)) {
      log(`cleanup: unmounting leftover namespace ${m}`);
      await run('umount', ['-l', m], { detached: false });
    }
    await rm(root, { recursive: true, force: true });
  });
  // Run a copy of bin/ + dist/ (+ proto/) taken now: a rebuild of dist/ by someone else during the run (a
  // restart loads every module again) must not change or break the daemon under test.
  const snapshot = join(root, 'podnet');
  await mkdir(snapshot);
  await cp(join(REPO, 'dist'), join(snapshot, 'dist'), { recursive: true });
  await cp(join(REPO, 'bin'), join(snapshot, 'bin'), { recursive: true });
  // The daemon reads the CRI schema at run time too (src/cri/wire-keys.ts checks map keys with it).
  await cp(join(REPO, 'proto'), join(snapshot, 'proto'), { recursive: true });
  await cp(join(REPO, 'package.json'), join(snapshot, 'package.json'));
  await symlink(join(REPO, 'node_modules'), join(snapshot, 'node_modules'));
  const network = await makeNetwork(root);
  return { root, snapshot, daemonBin: join(snapshot, 'bin', 'podnetd'), api, socketAlive, network };
}

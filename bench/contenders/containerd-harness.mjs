// The one place where the private containerd test harness plugs into the bench.
//
// The bench needs one function:
//
//   startContainerd({confDir, binDirs}) → Promise<{
//     socket: string                             containerd's CRI socket (the bench's grpc-js client dials it)
//     scrapeMetrics() → Promise<string>          GET http://127.0.0.1:<port>/v1/metrics (Prometheus text)
//     pid() → Promise<number>                    containerd's host pid
//     mountNsCommand(cmd, args, {pidNs?}) → [cmd, args]   runs a program in containerd's mount
//                                                (and pid) namespaces
//     stop() → Promise<void>                     stops containerd and everything it started
//     podLinux?: object                          merged into every pod config's `linux` (e.g. cgroupParent)
//   }>
//
// containerd 1.6 (Debian's, with runc) with its own root, state and socket in a private mount
// namespace, the pause image imported, CNI from confDir and binDirs (containerd adds loopback
// itself), and its Prometheus metrics on a free 127.0.0.1 port.
//
// Where the function comes from, first match wins:
//   1. BENCH_CONTAINERD_HARNESS=<path of an ES module exporting startContainerd>;
//   2. test/containerd/harness.ts (the CNI-door tests' harness), compiled by importTs() into the
//      run's snapshot; it is told the checkout's root, since its own file then lives elsewhere.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from '../lib/config.mjs';
import { must } from '../lib/proc.mjs';
import { scrapeHttp } from '../lib/prometheus.mjs';

const HARNESS_TS = join('test', 'containerd', 'harness.ts');

/** → {startContainerd} or {unavailable: why}; the harness is compiled once per run. */
export async function loadHarness(run) {
  const fromEnv = process.env.BENCH_CONTAINERD_HARNESS;
  if (fromEnv) {
    const m = await import(pathToFileURL(resolve(fromEnv)).href);
    if (typeof m.startContainerd !== 'function') return { unavailable: `${fromEnv} (BENCH_CONTAINERD_HARNESS) exports no startContainerd` };
    return { startContainerd: m.startContainerd };
  }
  if (!existsSync(join(REPO, HARNESS_TS))) return { unavailable: `the private containerd harness (${HARNESS_TS}) is not in this checkout` };
  run.containerdHarness ??= importTs(run, HARNESS_TS).then(adapt, (err) => ({ unavailable: `${HARNESS_TS} does not compile: ${err.message.split('\n')[0].slice(0, 300)}` }));
  return run.containerdHarness;
}

/** test/containerd/harness.ts's Containerd behind the bench's startContainerd(). */
function adapt(m) {
  const missing = m.containerdMissing(REPO);
  if (missing) return { unavailable: missing };
  return {
    async startContainerd({ confDir, binDirs }) {
      const c = await m.Containerd.start({ confDir, binDirs, metrics: true, repoRoot: REPO });
      return {
        socket: c.socket,
        // Without Accept-Encoding: containerd 1.6's exposition is ~370 KB (grpc counters for every
        // method × code), and gzipping it (what fetch asks for) costs containerd another 3–4 ms of
        // CPU per scrape on top of ~7.
        scrapeMetrics: () => scrapeHttp(c.metricsPort, '/v1/metrics', 'containerd metrics'),
        pid: () => c.pid(),
        mountNsCommand: (cmd, args, opts) => c.mountNsCommand(cmd, args, opts),
        stop: () => c.stop(),
        // Under the harness's own cgroup parent, which its stop() removes.
        podLinux: { cgroupParent: `/${c.cgroupParent}` },
      };
    },
  };
}

/**
 * Compiles a TypeScript module of the repo (and what it imports) into the run's snapshot and
 * imports it: type-stripped by tsc, no type check (make test checks them). Paths the module
 * derives from its own location then point into the snapshot, not the checkout.
 */
export async function importTs(run, relPath) {
  const outDir = join(run.snapshot, 'ts');
  await must(join(REPO, 'node_modules', '.bin', 'tsc'), ['--outDir', outDir, '--rootDir', REPO, '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--types', 'node', '--skipLibCheck', '--noCheck', join(REPO, relPath)], { detached: false });
  return import(pathToFileURL(join(outDir, relPath.replace(/\.ts$/, '.js'))).href);
}

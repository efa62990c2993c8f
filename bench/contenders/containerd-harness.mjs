// The one place where the private containerd test harness plugs into the bench.
//
// The bench needs one function:
//
//   startContainerd({confDir, binDirs, metricsAddress}) → Promise<{
//     crictl(args: string[]) → Promise<string>   crictl against this containerd; stdout, throws on exit ≠ 0
//     scrapeMetrics() → Promise<string>          GET http://<metricsAddress>/v1/metrics (Prometheus text)
//     stop() → Promise<void>                     stops containerd and everything it started
//     podLinux?: object                          merged into every pod config's `linux` (e.g. cgroup_parent)
//   }>
//
// containerd 1.6 (Debian's, with runc) with its own root, state and socket in a private mount
// namespace, the pause image imported, CNI from confDir and binDirs (containerd adds loopback
// itself), and its metrics on metricsAddress (127.0.0.1:<port>).
//
// Where the function comes from, first match wins:
//   1. BENCH_CONTAINERD_HARNESS=<path of an ES module exporting startContainerd>;
//   2. the adapter below, once the harness is merged (test/containerd/harness.ts is TypeScript:
//      importTs() compiles it and its imports into the run's snapshot so plain node can load it).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from '../lib/config.mjs';
import { must } from '../lib/proc.mjs';

const HARNESS_TS = join('test', 'containerd', 'harness.ts');

/** → {startContainerd} or {unavailable: why}. */
export async function loadHarness(run) {
  const fromEnv = process.env.BENCH_CONTAINERD_HARNESS;
  if (fromEnv) {
    const m = await import(pathToFileURL(resolve(fromEnv)).href);
    if (typeof m.startContainerd !== 'function') return { unavailable: `${fromEnv} (BENCH_CONTAINERD_HARNESS) exports no startContainerd` };
    return { startContainerd: m.startContainerd };
  }
  if (!existsSync(join(REPO, HARNESS_TS))) return { unavailable: `the private containerd harness (${HARNESS_TS}) is not in this checkout` };
  void run;
  return { unavailable: `${HARNESS_TS} is here but not adapted to the bench's startContainerd() yet (bench/contenders/containerd-harness.mjs)` };
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

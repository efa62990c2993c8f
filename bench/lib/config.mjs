// Where things are, and the sizes of a run (env overrides for quick tries; see bench/NOTES.md).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const CNI_BIN = ['/opt/cni/bin', '/usr/lib/cni'].find((d) => existsSync(join(d, 'bridge')) && existsSync(join(d, 'portmap')) && existsSync(join(d, 'loopback')));
export const OUT_DIR = process.env.BENCH_OUT ?? join(REPO, 'bench', 'results');

const envInt = (k, d) => (process.env[k] ? Number.parseInt(process.env[k], 10) : d);
/** Every size, with its default; `overridden` lists the BENCH_* variables set for this run. */
export const SIZES = {
  seq: envInt('BENCH_SEQ', 40), // sequential cycles per contender and scenario
  par: envInt('BENCH_PAR', 96), // cycles per contender and scenario at PAR_K in parallel
  parK: envInt('BENCH_PAR_K', 8),
  warmup: envInt('BENCH_WARMUP', 3),
  scale: envInt('BENCH_SCALE', 1000),
  scaleSeq: envInt('BENCH_SCALE_SEQ', 30),
  scaleConcurrency: 16,
  listCalls: 50,
  budgetS: envInt('BENCH_BUDGET_S', 780),
  profileScale: envInt('BENCH_PROFILE_SCALE', 1000),
  heapScale: envInt('BENCH_HEAP_SCALE', 300),
  heapConcurrency: envInt('BENCH_HEAP_CONCURRENCY', 16),
};
export const OVERRIDDEN = ['BENCH_SEQ', 'BENCH_PAR', 'BENCH_PAR_K', 'BENCH_WARMUP', 'BENCH_SCALE', 'BENCH_SCALE_SEQ', 'BENCH_BUDGET_S'].filter((k) => process.env[k]);
/** Extra node flags for podnetd, for experiments (e.g. BENCH_NODE_ARGS="--max-semi-space-size=4"). */
export const EXTRA_NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
/** Which contenders to run (comma list); default all four. */
export const CONTENDERS = (process.env.BENCH_CONTENDERS ?? 'limit,podnetd,containerd,containerd-podnet').split(',').map((s) => s.trim()).filter(Boolean);

// node bench/run.mjs --profile: podnetd under `node --cpu-prof`. A: sequential + 8-parallel pod
// cycles (one host port each); B: a start with SIZES.profileScale sandboxes on disk. Summaries
// by bench/profile-summary.mjs into bench/results/profile.txt, profiles in bench/results/profiles/.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EXTRA_NODE_ARGS, OUT_DIR, SIZES } from './lib/config.mjs';
import { checkAbort, log, onCleanup, sleep } from './lib/cleanup.mjs';
import { daemonMemory, memLine } from './lib/daemon-memory.mjs';
import { podnetCycle, startPodnet, versionStartMs } from './lib/podnetd.mjs';
import { cpuMs } from './lib/proc.mjs';
import { setupRun } from './lib/setup.mjs';
import { pool, samplesByStep, stats } from './lib/stats.mjs';
import { formatSummary, summarizeProfile } from './profile-summary.mjs';

// The profile's own sizes (more cycles than the interleaved run gives one contender).
const SEQ_N = process.env.BENCH_SEQ ? SIZES.seq : 100;
const PAR_N = process.env.BENCH_PAR ? SIZES.par : 200;

/** n cycles one after another → {n, wallMs, samples}. */
async function seqPhase(n, fn) {
  const samples = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    checkAbort();
    samples.push(await fn(i));
  }
  return { n, wallMs: performance.now() - t0, samples };
}

/** n cycles, k in flight → {n, k, wallMs, podsPerSec, samples}. */
async function parPhase(n, k, fn) {
  const samples = [];
  const t0 = performance.now();
  await pool(n, k, async (i) => {
    samples.push(await fn(i));
  });
  const wallMs = performance.now() - t0;
  return { n, k, wallMs, podsPerSec: n / (wallMs / 1000), samples };
}

function statsOf(samples) {
  const out = {};
  for (const [k, xs] of Object.entries(samplesByStep(samples))) out[k] = stats(xs);
  return out;
}

const fmt = (x, d = 1) => (x === undefined || Number.isNaN(x) ? '—' : Number(x).toFixed(d));

async function newestProfile(dir, seen) {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile') && !seen.has(f));
  if (files.length === 0) throw new Error(`no new .cpuprofile in ${dir}`);
  files.forEach((f) => seen.add(f));
  return join(dir, files.sort().at(-1));
}

export async function profileMain() {
  const run = await setupRun();
  const env = run.network;
  const profDir = await mkdtemp(join(tmpdir(), 'podnet-prof-'));
  onCleanup(`rm -r ${profDir}`, () => rm(profDir, { recursive: true, force: true }));
  const keepDir = join(OUT_DIR, 'profiles');
  const prof = ['--cpu-prof', '--cpu-prof-dir', profDir];
  const seen = new Set();
  log(`network ${env.netName}: bridge ${env.bridge}, ${env.subnet}; profiling podnetd (--cpu-prof) into ${profDir}`);

  // A: the pod cycle, sequential then 8 in parallel.
  const metricsAddress = `127.0.0.1:${randomInt(20000, 30000)}`;
  const d = await startPodnet(run, 'podnetd-profile', { nodeArgs: prof, extraTop: { metrics_address: metricsAddress } });
  const memIdle = await daemonMemory(metricsAddress);
  for (let i = 0; i < SIZES.warmup; i++) await podnetCycle(d);
  const cpu0 = await cpuMs(d.pid);
  log(`profile A: ${SEQ_N} sequential cycles`);
  const seq = await seqPhase(SEQ_N, () => podnetCycle(d));
  const cpu1 = await cpuMs(d.pid);
  log(`profile A: ${PAR_N} cycles, 8 in parallel`);
  const par = await parPhase(PAR_N, 8, () => podnetCycle(d));
  const cpu2 = await cpuMs(d.pid);
  await d.stop(60_000);
  const profA = await newestProfile(profDir, seen);

  // B: restart with SIZES.profileScale sandboxes on disk (created by an unprofiled daemon).
  d.nodeArgs = [...EXTRA_NODE_ARGS];
  await d.start();
  log(`profile B: creating ${SIZES.profileScale} sandboxes (concurrency ${SIZES.scaleConcurrency})`);
  const ids = [];
  await pool(SIZES.profileScale, SIZES.scaleConcurrency, async () => {
    ids.push(await d.runPod());
    if (ids.length % 200 === 0) log(`profile B: ${ids.length} running`);
  });
  const memScale = await daemonMemory(metricsAddress);
  log(`profile B: ${memLine(memScale)}`);
  const plainStop = await d.stop();
  const plainStart = await d.start();
  log(`profile B: unprofiled restart with ${ids.length}: stop ${plainStop.toFixed(0)} ms, start ${plainStart.toFixed(0)} ms`);
  await sleep(1000);
  const memRestart1 = await daemonMemory(metricsAddress);
  await sleep(4000);
  const memRestart5 = await daemonMemory(metricsAddress);
  await d.stop();
  d.nodeArgs = [...EXTRA_NODE_ARGS, ...prof];
  const profStart = await d.start();
  await sleep(3000); // the start-up GC runs after serving
  await d.stop(60_000);
  const profB = await newestProfile(profDir, seen);
  log(`profile B: profiled start ${profStart.toFixed(0)} ms`);
  const bare = await versionStartMs(run);
  d.nodeArgs = [...EXTRA_NODE_ARGS];
  await d.start();
  log(`profile B: removing ${ids.length}`);
  await pool(ids.length, SIZES.scaleConcurrency, async (i) => {
    await d.stopPod(ids[i]);
    await d.removePod(ids[i]);
  });
  await d.stop();

  await mkdir(keepDir, { recursive: true });
  await writeFile(join(keepDir, 'cycle.cpuprofile'), await readFile(profA));
  await writeFile(join(keepDir, 'restart.cpuprofile'), await readFile(profB));
  const st = statsOf(seq.samples);
  const text = [
    `podnetd CPU profiles (${new Date().toISOString()}), node --cpu-prof; summaries by bench/profile-summary.mjs`,
    '',
    `=== A: ${SEQ_N} sequential + ${PAR_N} 8-parallel pod cycles (+${SIZES.warmup} warm-up) ===`,
    `sequential: Run p50 ${fmt(st.run.p50)} ms, Stop p50 ${fmt(st.stop.p50)} ms, cycle p50 ${fmt(st.cycle.p50)} ms; podnetd CPU ${((cpu1 - cpu0) / SEQ_N).toFixed(2)} ms/pod (profiler overhead included)`,
    `8-parallel: ${par.podsPerSec.toFixed(1)} pods/s; podnetd CPU ${((cpu2 - cpu1) / PAR_N).toFixed(2)} ms/pod`,
    `memory, idle after start: ${memLine(memIdle)}`,
    '',
    formatSummary(summarizeProfile(profA), 30),
    '',
    `=== B: start with ${ids.length} sandboxes on disk, until Version answers, + 3 s (start-up GC) ===`,
    `unprofiled: stop ${plainStop.toFixed(0)} ms, start ${plainStart.toFixed(0)} ms; profiled start ${profStart.toFixed(0)} ms; \`podnetd --version\` (node + module load only) ${bare.toFixed(0)} ms`,
    `memory with ${ids.length} running (before restart): ${memLine(memScale)}`,
    `memory 1 s after the unprofiled restart: ${memLine(memRestart1)}`,
    `memory 5 s after the unprofiled restart: ${memLine(memRestart5)}`,
    '',
    formatSummary(summarizeProfile(profB), 30),
    '',
  ].join('\n');
  await writeFile(join(OUT_DIR, 'profile.txt'), text);
  process.stdout.write(text);
  log(`summary written to ${join(OUT_DIR, 'profile.txt')}; profiles in ${keepDir}`);
}


#!/usr/bin/env node
// Benchmark of issues 7 and 16: podnet against the raw plugin limit and against containerd 1.6,
// interleaved cycle by cycle in one run, on the same conflist; then podnetd at scale.
//
//   node bench/run.mjs              full run (make bench); table on stdout, progress on stderr,
//                                   every figure in bench/results/latest.json, the table in latest.md
//   node bench/run.mjs --profile    podnetd only, under `node --cpu-prof` (bench/profile.mjs)
//   node bench/run.mjs --heap       podnetd memory and heap snapshots (bench/heap.mjs)
//
// Sizes can be overridden for a quick try (bench/lib/config.mjs): BENCH_SEQ (40), BENCH_PAR (96),
// BENCH_PAR_K (8), BENCH_WARMUP (3), BENCH_SCALE (1000), BENCH_SCALE_SEQ (30), BENCH_BUDGET_S
// (780: what this script may take, so that `make bench` stays under 15 minutes; the scale phase
// creates fewer sandboxes when 1,000 would not fit, and says so), BENCH_OUT (results dir),
// BENCH_CONTENDERS (comma list; default limit,podnetd,containerd,containerd-podnet),
// BENCH_CONTAINERD_HARNESS (bench/contenders/containerd-harness.mjs).
//
// Needs root, iproute2, iptables and the reference plugins in /usr/lib/cni (or /opt/cni/bin), and
// a built dist/ (make build). Everything made is removed at the end and on failure or Ctrl-C.
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { CNI_BIN, CONTENDERS, OUT_DIR, OVERRIDDEN, SIZES } from './lib/config.mjs';
import { elapsedMs, log, runMain } from './lib/cleanup.mjs';
import { runScenario } from './lib/interleave.mjs';
import { iptablesLeaks, SCENARIOS } from './lib/network.mjs';
import { run as runProc } from './lib/proc.mjs';
import { scalePhase } from './lib/scale.mjs';
import { setupRun } from './lib/setup.mjs';
import { BOOTSTRAP_REPS, median } from './lib/stats.mjs';
import { makeContenders } from './contenders/index.mjs';
import { analyse, markdown } from './report.mjs';

async function main() {
  const run = await setupRun();
  const { network } = run;
  log(`network ${network.netName}: bridge ${network.bridge}, ${network.subnet}, plugins from ${CNI_BIN}`);
  const contenders = makeContenders(run, CONTENDERS);
  const status = {};
  for (const c of contenders) {
    const why = await c.available();
    if (why) c.disabled = `not available: ${why}`;
    status[c.name] = { label: c.label };
    log(`${c.name}: ${c.disabled ?? 'available'}`);
  }

  const R = {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      kernel: release(),
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memGiB: Math.round(totalmem() / 2 ** 30),
      cniBin: CNI_BIN,
      network: { name: network.netName, bridge: network.bridge, subnet: network.subnet, cniVersion: '1.0.0', plugins: ['bridge(host-local)', 'portmap'], loopback: 'cni-loopback 0.3.1, added by each runtime' },
      sizes: SIZES,
      overridden: OVERRIDDEN,
      scenarios: SCENARIOS,
      bootstrapReps: BOOTSTRAP_REPS,
      keys: 'figures.<contender>.<scenario>-<seq|parK>.<step>.<statistic>; samples the same without the statistic (chunks: parallel {cycles, ms}); comparisons by "a ÷ b"; targets by key',
    },
    contenders: status,
    parK: SIZES.parK,
    scenarios: {},
  };
  for (const scenario of SCENARIOS) R.scenarios[scenario.name] = await runScenario(contenders, scenario, SIZES);
  for (const c of contenders) {
    if (c.disabled) status[c.name].why = c.disabled;
    if (c.cpuOverheadMs !== undefined) status[c.name].cpuOverheadMsPerDetailCycle = c.cpuOverheadMs;
  }
  // What a detail cycle's extra calls cost a contender (podnetd: one more verbose status, for the
  // DEL timings; containerd: the metric scrapes) comes out of its CPU per cycle.
  for (const byContender of Object.values(R.scenarios)) {
    for (const [name, recs] of Object.entries(byContender)) {
      const over = status[name]?.cpuOverheadMsPerDetailCycle;
      if (over === undefined) continue;
      for (const rec of recs.seq ?? []) {
        if (rec.cpu === undefined) continue;
        rec.cpuRaw = rec.cpu;
        rec.cpu -= over;
        // The extra calls are the Node daemon's work, so its part of the split comes down too.
        if (rec.cpuDaemon !== undefined) rec.cpuDaemon -= over;
      }
    }
  }

  const cycleP50 = (c) => median((R.scenarios.port?.[c]?.seq ?? []).map((x) => x.cycle)) || 200;
  R.scale = await scalePhase(run, SIZES, cycleP50('podnetd') + cycleP50('limit'));

  const leftoverNetns = (await runProc('ip', ['netns', 'list'], { detached: false })).stdout.split('\n').filter((l) => l.startsWith('pnb-'));
  const leaks = await iptablesLeaks(network.netName);
  R.leaks = { iptablesRules: leaks.length, limitNetns: leftoverNetns.length };
  if (leaks.length > 0) log(`WARNING: ${leaks.length} iptables rule(s) of ${network.netName} left: ${leaks.slice(0, 3).join(' | ')}`);

  R.runtimeSec = elapsedMs() / 1000;
  analyse(R);
  const md = markdown(R);
  delete R.scenarios; // the samples are kept, by key, in R.samples
  await mkdir(OUT_DIR, { recursive: true });
  await writeFile(join(OUT_DIR, 'latest.json'), `${JSON.stringify(R, null, 1)}\n`);
  await writeFile(join(OUT_DIR, 'latest.md'), `${md}\n`);
  process.stdout.write(`${md}\n\nresults: ${join(OUT_DIR, 'latest.json')}, ${join(OUT_DIR, 'latest.md')}\n`);
}

const mode = process.argv.includes('--profile') ? (await import('./profile.mjs')).profileMain : process.argv.includes('--heap') ? (await import('./heap.mjs')).heapMain : main;
await runMain(mode);

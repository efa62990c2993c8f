// podnetd at scale: up to SIZES.scale sandboxes running (one host port each), then with them:
// sequential podnetd and limit cycles, ListPodSandbox, RSS, a restart; then remove them all.
import { performance } from 'node:perf_hooks';
import { readFile } from 'node:fs/promises';
import { checkAbort, elapsedMs, log, sleep, aborted } from './cleanup.mjs';
import { podnetCycle, startPodnet, versionStartMs } from './podnetd.mjs';
import { rssMiB } from './proc.mjs';
import { pool, samplesByStep, stats } from './stats.mjs';
import { limitContender } from '../contenders/limit.mjs';
import { SCENARIOS } from './network.mjs';

const fmt0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '—');

/** cycleMs: a podnetd + a limit cycle with nothing running (for the time budget). */
export async function scalePhase(run, sizes, cycleMs) {
  const S = {};
  const d = await startPodnet(run, 'podnetd-scale');
  // Time left: creating N pods, about half as long again to remove them, and the measurements
  // with N running (cycles were measured at about 2 × the cycle with none: portmap's rules grow).
  const fixedMs = sizes.scaleSeq * cycleMs * 2.2 + sizes.listCalls * 30 + 10_000;
  const leftMs = sizes.budgetS * 1000 - elapsedMs() - fixedMs - 10_000;
  const createBudgetMs = Math.max(10_000, leftMs / 1.6);
  log(`scale: creating up to ${sizes.scale} sandboxes at concurrency ${sizes.scaleConcurrency} (creation budget ${(createBudgetMs / 1000).toFixed(0)} s)`);
  const runs = [];
  const ids = [];
  const c0 = performance.now();
  let next = 0;
  let failure;
  await Promise.all(
    Array.from({ length: sizes.scaleConcurrency }, async () => {
      while (next < sizes.scale && !failure && !aborted() && performance.now() - c0 <= createBudgetMs) {
        next++;
        const t0 = performance.now();
        try {
          ids.push(await d.runPod());
          runs.push(performance.now() - t0);
        } catch (err) {
          failure ??= err;
        }
        if (ids.length % 100 === 0 && ids.length > 0) log(`scale: ${ids.length} running (${((performance.now() - c0) / 1000).toFixed(0)} s)`);
      }
    }),
  );
  if (failure) throw failure;
  checkAbort();
  const wallMs = performance.now() - c0;
  S.target = sizes.scale;
  S.running = ids.length;
  S.create = { wallMs, podsPerSec: ids.length / (wallMs / 1000), run: stats(runs), first100: stats(runs.slice(0, 100)), last100: stats(runs.slice(-100)) };
  if (ids.length < sizes.scale) {
    S.reduced = true;
    const rate = S.create.podsPerSec;
    S.reducedWhy = `creating ran at ${rate.toFixed(1)} pods/s (RunPodSandbox p50 ${fmt0(S.create.first100?.p50)} ms for the first 100, ${fmt0(S.create.last100?.p50)} ms for the last 100, as portmap's iptables rules grow), so ${sizes.scale} would not fit in the ${sizes.budgetS} s budget of the run`;
    log(`scale: REDUCED to ${ids.length}: ${S.reducedWhy}`);
  }
  log(`scale: ${ids.length} running after ${(wallMs / 1000).toFixed(1)} s (${S.create.podsPerSec.toFixed(1)} pods/s)`);
  S.rssMiB = await rssMiB(d.pid);

  log(`scale: ${sizes.scaleSeq} sequential podnetd cycles and ${sizes.scaleSeq} limit cycles, interleaved, with ${ids.length} running`);
  const limit = limitContender(run);
  await limit.setup(SCENARIOS.find((s) => s.hostPort));
  const pc = [];
  const lc = [];
  for (let i = 0; i < sizes.scaleSeq; i++) {
    checkAbort();
    pc.push(await podnetCycle(d, { delTimings: true }));
    lc.push(await limit.runCycle({ detail: true }));
  }
  await limit.teardown();
  S.podnetdCycle = statsOfRecords(pc);
  S.limitCycle = statsOfRecords(lc);

  const lt = [];
  let items = 0;
  for (let i = 0; i < sizes.listCalls; i++) {
    const t0 = performance.now();
    items = (await d.list()).length;
    lt.push(performance.now() - t0);
  }
  S.list = { ...stats(lt), items };
  log(`scale: ListPodSandbox p50 ${S.list.p50} ms (${items} items)`);
  S.rssAfterCyclesMiB = await rssMiB(d.pid);
  // Context for bench/NOTES.md: the mount table netns.exists() used to parse on every Stop (now one statfs).
  const mi = [];
  let miLines = 0;
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    miLines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').length;
    mi.push(performance.now() - t0);
  }
  S.mountinfo = { ...stats(mi), lines: miLines };

  log('scale: restart (SIGTERM, start on the same dirs, until Version answers)');
  const r0 = performance.now();
  const stopMs = await d.stop();
  const startMs = await d.start();
  S.restart = { stopMs, startMs, totalMs: performance.now() - r0 };
  log(`scale: restart ${S.restart.totalMs.toFixed(0)} ms (stop ${stopMs.toFixed(0)}, start ${startMs.toFixed(0)})`);
  S.afterRestartListed = (await d.list()).length;
  if (S.afterRestartListed !== ids.length) log(`WARNING: ${S.afterRestartListed} sandboxes listed after restart, ${ids.length} expected`);
  await sleep(1000);
  S.rssAfterRestartMiB = await rssMiB(d.pid);
  S.bareStartMs = await versionStartMs(run);

  log(`scale: stopping and removing ${ids.length} at concurrency ${sizes.scaleConcurrency}`);
  let removed = 0;
  const t0 = performance.now();
  await pool(ids.length, sizes.scaleConcurrency, async (i) => {
    await d.stopPod(ids[i]);
    await d.removePod(ids[i]);
    if (++removed % 200 === 0) log(`scale: ${removed} removed`);
  });
  const teardownMs = performance.now() - t0;
  S.teardown = { wallMs: teardownMs, podsPerSec: ids.length / (teardownMs / 1000) };
  log(`scale: removed all in ${(teardownMs / 1000).toFixed(1)} s`);
  await d.dispose();
  return S;
}

function statsOfRecords(records) {
  const out = {};
  for (const [k, xs] of Object.entries(samplesByStep(records))) out[k] = stats(xs);
  return out;
}

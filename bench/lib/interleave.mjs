// One scenario for every contender, interleaved cycle by cycle (A B C D A B C D …) so that drift
// and noise on this machine hit every contender alike: set up all, warm up, N sequential rounds,
// then rounds of parallel chunks, then tear down all.
import { performance } from 'node:perf_hooks';
import { checkAbort, log } from './cleanup.mjs';
import { cpuDelta } from './proc.mjs';
import { pool } from './stats.mjs';
import { NotAvailable } from '../contenders/errors.mjs';

/** An optional contender that fails is switched off for the rest of the run, with the reason. */
async function guarded(c, what, fn) {
  if (c.disabled) return undefined;
  try {
    return await fn();
  } catch (err) {
    if (!c.optional || err.name === 'Aborted') throw err;
    c.disabled = err instanceof NotAvailable ? `not available: ${err.message}` : `failed in ${what}: ${err.message.split('\n')[0].slice(0, 400)}`;
    log(`${c.name}: ${c.disabled}; its rows show —`);
    await Promise.resolve(c.teardown()).catch((e) => log(`${c.name}: teardown after the failure: ${e.message}`));
    return undefined;
  }
}

/**
 * → {[contender]: {seq: [step records, each with cpu], par: [step records], chunks: [{cycles, ms}]}}
 * for the contenders still enabled at the end.
 */
export async function runScenario(contenders, scenario, sizes) {
  const out = {};
  for (const c of contenders) {
    if (c.disabled) continue;
    log(`${scenario.name}: ${c.name}: setting up`);
    await guarded(c, 'setup', async () => {
      await c.setup(scenario);
      out[c.name] = { seq: [], par: [], chunks: [] };
    });
  }
  const live = () => contenders.filter((c) => !c.disabled && out[c.name]);

  log(`${scenario.name}: ${sizes.warmup} warm-up rounds (the first cycle creates the bridge)`);
  for (let i = 0; i < sizes.warmup; i++) for (const c of live()) await guarded(c, 'warm-up', () => c.runCycle({ detail: true }));

  log(`${scenario.name}: ${sizes.seq} sequential rounds of ${live().map((c) => c.name).join(' ')}`);
  for (let i = 0; i < sizes.seq; i++) {
    checkAbort();
    for (const c of live()) {
      await guarded(c, 'a sequential cycle', async () => {
        // A contender that reads its own CPU inside the cycle (podnetd: between its scrapes) says so.
        const cpu0 = c.cpuMs && !c.cpuInCycle ? await c.cpuMs() : undefined;
        const rec = await c.runCycle({ detail: true });
        if (cpu0 !== undefined) Object.assign(rec, cpuDelta(cpu0, await c.cpuMs()));
        out[c.name].seq.push(rec);
      });
    }
    if ((i + 1) % 10 === 0) log(`${scenario.name}: ${i + 1}/${sizes.seq} sequential rounds`);
  }

  // Parallel: chunks of 2 × k cycles at k in flight, one contender's chunk after another's.
  // A chunk's ramp-down tail costs every contender alike; throughput = Σ cycles / Σ chunk time.
  const chunk = 2 * sizes.parK;
  const rounds = Math.ceil(sizes.par / chunk);
  log(`${scenario.name}: ${rounds} parallel rounds, chunks of ${chunk} cycles at ${sizes.parK} in flight`);
  for (let r = 0; r < rounds; r++) {
    for (const c of live()) {
      await guarded(c, 'a parallel chunk', async () => {
        const recs = [];
        const t0 = performance.now();
        await pool(chunk, sizes.parK, async () => {
          recs.push(await c.runCycle({ detail: false }));
        });
        out[c.name].chunks.push({ cycles: chunk, ms: performance.now() - t0 });
        out[c.name].par.push(...recs);
      });
    }
  }

  for (const c of live()) {
    log(`${scenario.name}: ${c.name}: tearing down`);
    await guarded(c, 'teardown', () => c.teardown());
  }
  for (const name of Object.keys(out)) if (contenders.find((c) => c.name === name).disabled) delete out[name];
  return out;
}

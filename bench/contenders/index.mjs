// The contenders of a run and the one interface they share.
//
// A contender is an object with
//   name, label            stable key (latest.json) and what the table calls it
//   optional               true: a failure disables it (its rows show —) instead of failing the run
//   available()            → undefined, or why it cannot run here ("not available: <why>")
//   setup(scenario)        starts what it needs for one scenario ({name, hostPort, label})
//   runCycle({detail})     one pod cycle → {step: ms}; detail (sequential only) asks for the
//                          per-call network parts (plugin timings, containerd's timers), which
//                          cost an extra call or scrape around each RPC
//   teardown()             removes what setup made (and any pod a failed cycle left)
//   cpuMs(), rssMiB()      where it applies: cumulative CPU ms of its own process(es) (a number,
//                          or {total, ...parts}), and RSS in MiB
//   cpuOverheadMs          where it applies: CPU a detail cycle spends on the bench's extra calls
//   cpuInCycle             true: runCycle reads cpuMs() itself and returns cpu (podnetd, so its
//                          metric scrapes fall outside the reading)
// Step names are each contender's own (limit: totalAdd, podnetd: run, containerd: runNetwork …);
// bench/report.mjs says which step of each a table row shows (bench/NOTES.md lists them).
import { containerdContender } from './containerd.mjs';
import { containerdPodnetContender } from './containerd-podnet.mjs';
import { limitContender } from './limit.mjs';
import { podnetdContender } from './podnetd.mjs';

export { NotAvailable } from './errors.mjs';

const FACTORIES = new Map([
  ['limit', limitContender],
  ['podnetd', podnetdContender],
  ['containerd', containerdContender],
  ['containerd-podnet', containerdPodnetContender],
]);
export const CONTENDER_NAMES = [...FACTORIES.keys()];

/** The named contenders for a run (setupRun()'s result). */
export function makeContenders(run, names) {
  return names.map((n) => {
    const f = FACTORIES.get(n);
    if (!f) throw new Error(`unknown contender ${JSON.stringify(n)} (known: ${CONTENDER_NAMES.join(', ')})`);
    return f(run);
  });
}

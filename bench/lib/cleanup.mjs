// The bench's log, abort flag and cleanup stack: everything a run makes registers its undo here,
// and it runs newest first at the end, on a failure, or on Ctrl-C.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

const T0 = performance.now();
export const elapsedMs = () => performance.now() - T0;
export const elapsedS = () => (elapsedMs() / 1000).toFixed(1);
export const log = (msg) => process.stderr.write(`[bench ${elapsedS().padStart(6)}s] ${msg}\n`);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const hex = (n) => randomBytes(Math.ceil(n / 2)).toString('hex').slice(0, n);

export class Aborted extends Error {
  constructor(why) {
    super(`aborted: ${why}`);
    this.name = 'Aborted';
  }
}
let abortReason;
export const aborted = () => abortReason !== undefined;
export function checkAbort() {
  if (abortReason) throw new Aborted(abortReason);
}

/** Undo actions, run newest first, each once. */
const cleanups = [];
let cleaning;
export function onCleanup(what, fn) {
  cleanups.push({ what, fn });
}
export function runCleanups() {
  cleaning ??= (async () => {
    const errors = [];
    while (cleanups.length > 0) {
      const { what, fn } = cleanups.pop();
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${err.message}`);
        log(`cleanup failed: ${what}: ${err.message}`);
      }
    }
    return errors;
  })();
  return cleaning;
}

let signals = 0;
/**
 * Ctrl-C, SIGTERM, SIGHUP and a stray failure still clean up. Installed by runMain, not on
 * import: the analysis modules that import this file are loaded by tests too.
 */
function installHandlers() {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      signals++;
      if (signals === 1) {
        abortReason = `${sig} received`;
        log(`${sig}: stopping after the operations in flight, then cleaning up (again to force)`);
        // The main flow notices at its next checkpoint and cleans up in its finally. If it is stuck, clean up anyway.
        setTimeout(() => void runCleanups().then(() => process.exit(130)), 60_000).unref();
      } else {
        log(`${sig} again: cleaning up now`);
        void runCleanups().then(() => process.exit(130));
      }
    });
  }
  process.on('unhandledRejection', (err) => {
    log(`unhandled rejection: ${err?.stack ?? err}`);
    void runCleanups().then(() => process.exit(1));
  });
  process.on('uncaughtException', (err) => {
    log(`uncaught exception: ${err?.stack ?? err}`);
    void runCleanups().then(() => process.exit(1));
  });
}

/** Runs entry, then the cleanups, and exits with 0, 1 (failure or cleanup error) or 130 (aborted). */
export async function runMain(entry) {
  installHandlers();
  let code = 0;
  try {
    await entry();
  } catch (err) {
    code = err instanceof Aborted ? 130 : 1;
    log(`FAILED: ${err.stack ?? err}`);
  } finally {
    const errors = await runCleanups();
    if (errors.length > 0) {
      log(`cleanup had ${errors.length} error(s)`);
      code ||= 1;
    }
    log(`done in ${elapsedS()} s`);
  }
  process.exit(code);
}

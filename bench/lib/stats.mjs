// Statistics of sample lists, a bounded worker pool, and bootstrap intervals.
import { checkAbort, aborted } from './cleanup.mjs';

export function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = (sorted.length - 1) * p;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}
const finiteSorted = (xs) => xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
export const median = (xs) => pct(finiteSorted(xs), 0.5);
export const mean = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x));
  return s.length === 0 ? NaN : s.reduce((a, b) => a + b, 0) / s.length;
};

const r3 = (x) => Math.round(x * 1000) / 1000;
/** {n, p50, p95, p99, mean, min, max} of a sample list. */
export function stats(xs) {
  const s = finiteSorted(xs);
  if (s.length === 0) return undefined;
  return { n: s.length, p50: r3(pct(s, 0.5)), p95: r3(pct(s, 0.95)), p99: r3(pct(s, 0.99)), mean: r3(s.reduce((a, b) => a + b, 0) / s.length), min: r3(s[0]), max: r3(s[s.length - 1]) };
}

/** Per-cycle step records ({step: ms}) → sample lists by step. */
export function samplesByStep(records) {
  const out = {};
  for (const rec of records) for (const [k, v] of Object.entries(rec)) if (Number.isFinite(v)) (out[k] ??= []).push(v);
  return out;
}

/** Runs fn(i) for i in [0, n) with k workers; stops taking work at the first failure or abort. */
export async function pool(n, k, fn) {
  let next = 0;
  let failure;
  const worker = async () => {
    while (next < n && !failure && !aborted()) {
      const i = next++;
      try {
        await fn(i);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(k, n) }, worker));
  if (failure) throw failure;
  checkAbort();
}

// ---- bootstrap ------------------------------------------------------------------------------------

/** FNV-1a of a string: the seed of a comparison is its key, so its interval depends on its samples only. */
function seedOf(key) {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
/** mulberry32: small, fast, and the same sequence on every machine for a seed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const BOOTSTRAP_REPS = 2000;

/**
 * Percentile bootstrap: f applied to the samples as measured (value), and the 2.5th/97.5th
 * percentiles of f over `reps` resamplings of every sample list (each with replacement, its own
 * size). Seeded by key.
 */
export function bootstrap(key, sampleLists, f, reps = BOOTSTRAP_REPS) {
  const lists = sampleLists.map((xs) => (xs ?? []).filter((x) => typeof x !== 'number' || Number.isFinite(x)));
  if (lists.some((xs) => xs.length === 0)) return undefined;
  const value = f(...lists);
  // A zero denominator (a step that took no time) has no ratio to show.
  if (!Number.isFinite(value)) return undefined;
  const next = rng(seedOf(key));
  const out = [];
  for (let r = 0; r < reps; r++) {
    const re = lists.map((xs) => {
      const y = new Array(xs.length);
      for (let i = 0; i < xs.length; i++) y[i] = xs[Math.floor(next() * xs.length)];
      return y;
    });
    const v = f(...re);
    if (Number.isFinite(v)) out.push(v);
  }
  out.sort((a, b) => a - b);
  return { value: r3(value), lo: r3(pct(out, 0.025)), hi: r3(pct(out, 0.975)), reps, n: lists.map((xs) => xs.length) };
}

/** p50(a) / p50(b) with its interval. */
export const ratioOfMedians = (key, a, b) => bootstrap(key, [a, b], (x, y) => median(x) / median(y));
/** p50(a) − p50(b) with its interval. */
export const diffOfMedians = (key, a, b) => bootstrap(key, [a, b], (x, y) => median(x) - median(y));
/** A single sample's p50 (or mean) with its interval. */
export const medianOf = (key, a) => bootstrap(key, [a], (x) => median(x));
export const meanOf = (key, a) => bootstrap(key, [a], (x) => mean(x));
/** Throughput ratio from per-chunk (cycles, ms) records: Σcycles/Σms of a over the same of b. */
export const throughputRatio = (key, a, b) => bootstrap(key, [a, b], (x, y) => rate(x) / rate(y));
/** pods/s of chunk records {cycles, ms}. */
export function rate(chunks) {
  let n = 0;
  let ms = 0;
  for (const c of chunks) {
    n += c.cycles;
    ms += c.ms;
  }
  return n / (ms / 1000);
}

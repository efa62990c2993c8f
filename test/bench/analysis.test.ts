// The bench's analysis (bench/report.mjs, bench/lib/stats.mjs, bench/lib/prometheus.mjs), with
// no machine in the loop: what a target's verdict rests on must hold for any samples.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';

interface Interval {
  value: number;
  lo: number;
  hi: number;
  n: number[];
  reps: number;
}
interface Target {
  key: string;
  value?: number;
  lo?: number;
  hi?: number;
  result: 'PASS' | 'MISS' | '—';
}
interface Run {
  targets: Target[];
  [k: string]: unknown;
}
interface StatsModule {
  ratioOfMedians: (key: string, a: number[], b: number[]) => Interval | undefined;
  throughputRatio: (key: string, a: Array<{ cycles: number; ms: number }>, b: Array<{ cycles: number; ms: number }>) => Interval | undefined;
}
interface ReportModule {
  analyse: (R: Record<string, unknown>) => Run;
}
type Metrics = Map<string, number>;
interface PrometheusModule {
  parseMetrics: (text: string) => Metrics;
  histogramDelta: (before: Metrics, after: Metrics, name: string, labels?: Record<string, string>) => { count: number; ms: number };
}

// Plain ES modules without types: loaded by a path the type checker does not follow.
const load = async <T>(rel: string): Promise<T> => (await import(new URL(rel, import.meta.url).href)) as T;
const statsLib = () => load<StatsModule>('../../bench/lib/stats.mjs');
const report = () => load<ReportModule>('../../bench/report.mjs');
const prometheus = () => load<PrometheusModule>('../../bench/lib/prometheus.mjs');

/** n samples around m, the same for the same arguments. */
function around(m: number, n: number, spread: number, phase = 0): number[] {
  return Array.from({ length: n }, (_, i) => m + spread * Math.sin(i * 1.7 + phase));
}

describe('bootstrap intervals', () => {
  it('are seeded by the comparison: the same samples and key give the same interval, the value is the plain p50 ratio', async () => {
    const { ratioOfMedians } = await statsLib();
    const a = around(30, 40, 3);
    const b = around(40, 40, 4, 1);
    const x = ratioOfMedians('k', a, b)!;
    expect(ratioOfMedians('k', a, b)).toEqual(x);
    const med = (xs: number[]): number => {
      const s = [...xs].sort((p, q) => p - q);
      return (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2;
    };
    expect(x.value).toBeCloseTo(med(a) / med(b), 3);
    expect(x.lo).toBeLessThanOrEqual(x.value);
    expect(x.hi).toBeGreaterThanOrEqual(x.value);
    expect(x).toMatchObject({ n: [40, 40], reps: 2000 });
    // Another key resamples differently (the interval moves a little, the value does not).
    const y = ratioOfMedians('another', a, b)!;
    expect(y.value).toBe(x.value);
    expect([y.lo, y.hi]).not.toEqual([x.lo, x.hi]);
  });

  it('throughput is Σcycles / Σms of the chunks, compared as a ratio', async () => {
    const { throughputRatio } = await statsLib();
    const a = [{ cycles: 16, ms: 800 }, { cycles: 16, ms: 800 }];
    const b = [{ cycles: 16, ms: 1600 }, { cycles: 16, ms: 1600 }];
    expect(throughputRatio('t', a, b)).toMatchObject({ value: 2, lo: 2, hi: 2 });
  });
});

/** A run of the two podnetd/limit steps the limit targets read, with the given podnetd ÷ limit level. */
function syntheticRun(podnetdOverLimit: number): Record<string, unknown> {
  const seq = (m: number, s: number) => around(m, 40, s);
  return {
    contenders: { limit: { label: 'limit' }, podnetd: { label: 'podnetd' } },
    parK: 8,
    samples: {
      limit: { 'noport-seq': { totalAdd: seq(40, 2), totalDel: seq(50, 2) } },
      podnetd: { 'noport-seq': { runNetwork: seq(40 * podnetdOverLimit, 2), stopNetwork: seq(50 * podnetdOverLimit, 2), removeNetwork: seq(1.2, 0.1), cpu: seq(30, 3) } },
    },
  };
}

describe('targets', () => {
  it('a ≤ target passes only when the whole interval is under its bound, and names no verdict without its contenders', async () => {
    const { analyse } = await report();
    const byKey = (R: Run) => new Map(R.targets.map((t) => [t.key, t]));
    const fast = byKey(analyse(syntheticRun(0.7)));
    expect(fast.get('run-vs-limit')).toMatchObject({ result: 'PASS' });
    expect(fast.get('run-vs-limit')!.hi!).toBeLessThanOrEqual(0.9);
    expect(fast.get('stop-vs-limit')).toMatchObject({ result: 'PASS' });
    expect(fast.get('remove')).toMatchObject({ result: 'PASS' });
    expect(fast.get('cpu')).toMatchObject({ result: 'MISS' });
    // No containerd in the run: its targets are —, not a PASS or a MISS.
    expect(fast.get('run-vs-containerd')).toMatchObject({ result: '—' });
    // p50 ratio exactly at the bound: the interval reaches over it, so it is a MISS.
    const edge = byKey(analyse(syntheticRun(0.9)));
    const t = edge.get('run-vs-limit')!;
    expect(t.value).toBeCloseTo(0.9, 2);
    expect(t.hi!).toBeGreaterThan(0.9);
    expect(t.result).toBe('MISS');
  });

  it('the committed results reproduce their own verdicts from their samples', async () => {
    const { analyse } = await report();
    const saved = JSON.parse(await readFile(new URL('../../bench/results/latest.json', import.meta.url), 'utf8')) as Run & { samples: unknown };
    const again = analyse({ ...saved, targets: undefined, comparisons: undefined, figures: undefined });
    expect(again.targets.map((t) => [t.key, t.result, t.value, t.lo, t.hi])).toEqual(saved.targets.map((t) => [t.key, t.result, t.value, t.lo, t.hi]));
  });
});

describe('reading a daemon timer between two scrapes', () => {
  it('is the histogram Δsum of the one series, whatever the label order, and Δcount says how many calls it saw', async () => {
    const { parseMetrics, histogramDelta } = await prometheus();
    const scrape = (count: number, sum: number) =>
      [
        '# HELP podnet_rpc_duration_seconds Request latency, by door and method.',
        '# TYPE podnet_rpc_duration_seconds histogram',
        `podnet_rpc_duration_seconds_bucket{le="0.05",door="cri",method="RunPodSandbox"} ${count}`,
        `podnet_rpc_duration_seconds_sum{door="cri",method="RunPodSandbox"} ${sum}`,
        `podnet_rpc_duration_seconds_count{door="cri",method="RunPodSandbox"} ${count}`,
        `podnet_rpc_duration_seconds_sum{method="StopPodSandbox",door="cri"} 9`,
        `podnet_rpc_duration_seconds_count{method="StopPodSandbox",door="cri"} 3`,
      ].join('\n');
    const before = parseMetrics(scrape(4, 0.1));
    const after = parseMetrics(scrape(5, 0.1335));
    const run = histogramDelta(before, after, 'podnet_rpc_duration_seconds', { method: 'RunPodSandbox', door: 'cri' });
    expect(run.count).toBe(1);
    expect(run.ms).toBeCloseTo(33.5, 6);
    expect(histogramDelta(before, after, 'podnet_rpc_duration_seconds', { door: 'cri', method: 'StopPodSandbox' })).toEqual({ count: 0, ms: 0 });
  });
});

// From a run's samples to every figure by stable keys, the comparisons with their bootstrap
// intervals, the targets of issue 16, and the Markdown table.
import { diffOfMedians, meanOf, medianOf, rate, ratioOfMedians, stats, throughputRatio } from './lib/stats.mjs';

export const CONTENDER_COLUMNS = ['limit', 'podnetd', 'containerd', 'containerd-podnet'];
const CDP = 'containerd-podnet';

/** Rows of a sequential table: which step of each contender the row shows. */
const SEQ_ROWS = [
  { label: 'netns create (limit: ip netns add)', steps: { limit: 'netnsAdd' } },
  { label: 'loopback ADD', steps: { limit: 'loAdd', podnetd: 'loAdd' } },
  { label: 'bridge ADD (+host-local)', steps: { limit: 'bridgeAdd', podnetd: 'bridgeAdd' } },
  { label: 'portmap ADD', steps: { limit: 'portmapAdd', podnetd: 'portmapAdd' } },
  { label: 'CNI ADD (limit: lo + bridge + portmap, serial; containerd: set_up_pod)', steps: { limit: 'cniAdd', containerd: 'cniAdd', [CDP]: 'cniAdd' } },
  { label: "**Run, network part** (limit: netns + ADDs, serial; podnetd: RunPodSandbox by its own timer; containerd: sandbox_create_network)", steps: { limit: 'totalAdd', podnetd: 'runNetwork', containerd: 'runNetwork', [CDP]: 'runNetwork' } },
  { label: 'Run outside the plugins (podnetd: Run − bridge − portmap; containerd: create_network − set_up_pod)', steps: { limit: 'addOutsidePlugins', podnetd: 'addOutsidePlugins', containerd: 'addOutsidePlugins', [CDP]: 'addOutsidePlugins' } },
  { label: 'RunPodSandbox, whole RPC as the client sees it (containerd: its pause container started too)', steps: { podnetd: 'run', containerd: 'run', [CDP]: 'run' } },
  { label: 'PodSandboxStatus (verbose)', steps: { podnetd: 'status' } },
  { label: 'portmap DEL', steps: { limit: 'portmapDel', podnetd: 'portmapDel' } },
  { label: 'bridge DEL (+host-local)', steps: { limit: 'bridgeDel', podnetd: 'bridgeDel' } },
  { label: 'loopback DEL', steps: { limit: 'loDel', podnetd: 'loDel' } },
  { label: 'netns delete (limit: ip netns del)', steps: { limit: 'netnsDel' } },
  { label: 'CNI DEL (limit: the three DELs, serial; containerd: tear_down_pod)', steps: { limit: 'cniDel', containerd: 'cniDel', [CDP]: 'cniDel' } },
  { label: '**Stop, network part** (limit: DELs + netns del; podnetd: StopPodSandbox by its own timer; containerd: sandbox_delete_network)', steps: { limit: 'totalDel', podnetd: 'stopNetwork', containerd: 'stopNetwork', [CDP]: 'stopNetwork' } },
  { label: 'Stop outside the plugins (limit: netns del; podnetd: Stop − portmap − bridge, loopback runs beside them; containerd: delete_network − tear_down_pod)', steps: { limit: 'delOutsidePlugins', podnetd: 'delOutsidePlugins', containerd: 'delOutsidePlugins', [CDP]: 'delOutsidePlugins' } },
  { label: 'StopPodSandbox, whole RPC as the client sees it (containerd: its pause container stopped too)', steps: { podnetd: 'stop', containerd: 'stop', [CDP]: 'stop' } },
  { label: '**Remove, network part** (podnetd: RemovePodSandbox by its own timer; containerd: its second teardown)', steps: { podnetd: 'removeNetwork', containerd: 'removeNetwork', [CDP]: 'removeNetwork' } },
  { label: 'RemovePodSandbox, whole RPC as the client sees it', steps: { podnetd: 'remove', containerd: 'remove', [CDP]: 'remove' } },
  { label: 'pod cycle (limit: ADD + DEL; others: their RPCs)', steps: { limit: 'cycle', podnetd: 'cycle', containerd: 'cycle', [CDP]: 'cycle' } },
  { label: 'CPU per pod cycle, mean (podnetd: daemon + helper; limit: the bench runner; containerd: its daemon, no shims)', steps: { limit: 'cpu', podnetd: 'cpu', containerd: 'cpu', [CDP]: 'cpu' }, stat: 'mean' },
  { label: '… of which the Node daemon', steps: { podnetd: 'cpuDaemon' }, stat: 'mean' },
  { label: '… of which the podnet-spawner helper', steps: { podnetd: 'cpuHelper' }, stat: 'mean' },
];
const PAR_ROWS = [
  { label: 'Run, network part (limit: netns + ADDs, serial; podnetd: RunPodSandbox as the client sees it)', steps: { limit: 'totalAdd', podnetd: 'run' } },
  { label: 'Stop, network part (limit: DELs + netns del; podnetd: StopPodSandbox as the client sees it)', steps: { limit: 'totalDel', podnetd: 'stop' } },
  { label: 'RunPodSandbox, whole RPC', steps: { podnetd: 'run', containerd: 'run', [CDP]: 'run' } },
  { label: 'StopPodSandbox, whole RPC', steps: { podnetd: 'stop', containerd: 'stop', [CDP]: 'stop' } },
  { label: 'pod cycle', steps: { limit: 'cycle', podnetd: 'cycle', containerd: 'cycle', [CDP]: 'cycle' } },
];

const r3 = (x) => Math.round(x * 1000) / 1000;

/** Step records of a run (R.scenarios) → samples by contender, mode and step, rounded to µs. */
function samplesOf(R) {
  const samples = {};
  for (const [scn, byContender] of Object.entries(R.scenarios)) {
    for (const [c, data] of Object.entries(byContender)) {
      const parMode = `${scn}-par${R.parK}`;
      for (const [mode, records] of [[`${scn}-seq`, data.seq], [parMode, data.par]]) {
        const byStep = {};
        for (const rec of records) for (const [k, v] of Object.entries(rec)) if (Number.isFinite(v)) (byStep[k] ??= []).push(r3(v));
        (samples[c] ??= {})[mode] = byStep;
      }
      samples[c][parMode].chunks = data.chunks.map((x) => ({ cycles: x.cycles, ms: r3(x.ms) }));
    }
  }
  return samples;
}

/**
 * R: {meta, contenders: {name: {label, why?}}, parK, scale, and either scenarios: {scn:
 * {contender: {seq, par, chunks}}} (a run) or samples (a latest.json)}. Adds R.samples,
 * R.figures, R.comparisons, R.targets; returns R. The same samples always give the same result.
 */
export function analyse(R) {
  const samples = R.scenarios ? samplesOf(R) : R.samples;
  const figures = {};
  for (const [c, byMode] of Object.entries(samples)) {
    for (const [mode, byStep] of Object.entries(byMode)) {
      const f = ((figures[c] ??= {})[mode] = {});
      for (const [k, xs] of Object.entries(byStep)) if (k !== 'chunks') f[k] = stats(xs);
      const chunks = byStep.chunks;
      if (chunks?.length > 0) f.throughput = { podsPerSec: r3(rate(chunks)), chunks: chunks.length, cycles: chunks.reduce((a, x) => a + x.cycles, 0) };
    }
  }
  R.samples = samples;
  R.figures = figures;
  const S = (c, mode, step) => samples[c]?.[mode]?.[step];

  // Every p50 ratio the tables show, with its interval.
  const comparisons = {};
  const compare = (a, b, kind = 'p50 ratio') => {
    const key = `${a.join('/')} ÷ ${b.join('/')}`;
    if (comparisons[key] !== undefined) return comparisons[key];
    const sa = kind === 'throughput ratio' ? S(a[0], a[1], 'chunks') : S(...a);
    const sb = kind === 'throughput ratio' ? S(b[0], b[1], 'chunks') : S(...b);
    const ci = sa && sb ? (kind === 'throughput ratio' ? throughputRatio(key, sa, sb) : ratioOfMedians(key, sa, sb)) : undefined;
    comparisons[key] = ci ? { a: a.join('/'), b: b.join('/'), statistic: kind, ...ci } : undefined;
    return comparisons[key];
  };
  R.compare = compare;
  R.comparisons = comparisons;

  // The targets of issue 16 (no host port, sequential, unless said).
  const seq = 'noport-seq';
  const par = `noport-par${R.parK}`;
  const why = (...cs) => cs.filter((c) => !figures[c]).map((c) => `${c} ${R.contenders[c]?.why?.split(':')[0] ?? 'not run'}`).join(', ');
  const T = [];
  const target = (key, label, { need, ci, bound, dir, unit = '×' }) => {
    const missing = why(...need);
    const t = { key, label, target: `${dir === 'le' ? '≤' : '≥'} ${bound}${unit === '×' ? '' : ` ${unit}`}`, bound, dir, unit };
    if (missing || !ci) {
      t.result = '—';
      t.why = missing || 'no samples';
    } else {
      Object.assign(t, { value: ci.value, lo: ci.lo, hi: ci.hi });
      // Met only when the whole interval is on the right side: its upper end for ≤, lower end for ≥.
      t.result = (dir === 'le' ? ci.hi <= bound : ci.lo >= bound) ? 'PASS' : 'MISS';
    }
    T.push(t);
  };
  target('run-vs-containerd', "RunPodSandbox ≤ containerd's network part of RunPodSandbox (p50 ratio)", { need: ['podnetd', 'containerd'], ci: compare(['podnetd', seq, 'runNetwork'], ['containerd', seq, 'runNetwork']), bound: 1, dir: 'le' });
  target('run-vs-limit', 'RunPodSandbox ≤ 0.90 × the raw serial limit (netns + lo + bridge + portmap)', { need: ['podnetd', 'limit'], ci: compare(['podnetd', seq, 'runNetwork'], ['limit', seq, 'totalAdd']), bound: 0.9, dir: 'le' });
  target('stop-vs-containerd', "StopPodSandbox ≤ containerd's network part of StopPodSandbox", { need: ['podnetd', 'containerd'], ci: compare(['podnetd', seq, 'stopNetwork'], ['containerd', seq, 'stopNetwork']), bound: 1, dir: 'le' });
  target('stop-vs-limit', 'StopPodSandbox ≤ 0.95 × the raw serial DEL limit', { need: ['podnetd', 'limit'], ci: compare(['podnetd', seq, 'stopNetwork'], ['limit', seq, 'totalDel']), bound: 0.95, dir: 'le' });
  target('remove', 'RemovePodSandbox ≤ 2 ms (p50, its own timer)', { need: ['podnetd'], ci: S('podnetd', seq, 'removeNetwork') && medianOf('podnetd/noport-seq/removeNetwork p50', S('podnetd', seq, 'removeNetwork')), bound: 2, dir: 'le', unit: 'ms' });
  for (const [step, op] of [['cniAdd', 'set_up_pod'], ['cniDel', 'tear_down_pod']]) {
    const a = S(CDP, seq, step);
    const b = S('containerd', seq, step);
    target(`door-${op}`, `the CNI door adds ≤ 2 ms to containerd's ${op} (p50 difference)`, { need: [CDP, 'containerd'], ci: a && b && diffOfMedians(`${CDP}/${seq}/${step} − containerd/${seq}/${step}`, a, b), bound: 2, dir: 'le', unit: 'ms' });
  }
  target('throughput-vs-containerd', `throughput at ${R.parK} in parallel ≥ containerd's`, { need: ['podnetd', 'containerd'], ci: compare(['podnetd', par], ['containerd', par], 'throughput ratio'), bound: 1, dir: 'ge' });
  target('throughput-vs-limit', `throughput at ${R.parK} in parallel ≥ 0.95 × the limit's`, { need: ['podnetd', 'limit'], ci: compare(['podnetd', par], ['limit', par], 'throughput ratio'), bound: 0.95, dir: 'ge' });
  target('cpu', 'podnetd CPU per pod cycle (daemon + helper, mean) ≤ 8 ms', { need: ['podnetd'], ci: S('podnetd', seq, 'cpu') && meanOf('podnetd/noport-seq/cpu mean', S('podnetd', seq, 'cpu')), bound: 8, dir: 'le', unit: 'ms' });
  R.targets = T;
  return R;
}

// ---- Markdown --------------------------------------------------------------------------------------

const fmt = (x, d = 1) => (x === undefined || x === null || Number.isNaN(x) ? '—' : Number(x).toFixed(d));
const dOf = (x) => (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
const ci = (c, d = 2) => (c ? `${fmt(c.value, d)} [${fmt(c.lo, d)}–${fmt(c.hi, d)}]` : '');

export function targetCell(t) {
  if (t.result === '—') return '—';
  const d = t.unit === '×' ? 2 : 1;
  return `${fmt(t.value, d)}${t.unit === '×' ? '×' : ` ${t.unit}`} [${fmt(t.lo, d)}–${fmt(t.hi, d)}]`;
}

export function targetsTable(R) {
  const out = ['| target | p50 [95 % interval] | result |', '|---|---|:-:|'];
  for (const t of R.targets) out.push(`| ${t.label} | ${targetCell(t)} | ${t.result === 'MISS' ? '**MISS**' : t.result}${t.why ? ` (${t.why})` : ''} |`);
  return out.join('\n');
}

function stepTable(R, mode, rows, { throughput = false } = {}) {
  const F = R.figures;
  const cols = CONTENDER_COLUMNS;
  const head = `| | ${cols.map((c) => `${c} p50 / p95`).join(' | ')} | podnetd ÷ limit [95 %] | podnetd ÷ containerd [95 %] |`;
  const out = [head, `|---|${cols.map(() => '--:').join('|')}|--:|--:|`];
  if (throughput) {
    const cells = cols.map((c) => fmt(F[c]?.[mode]?.throughput?.podsPerSec));
    out.push(`| throughput (pod cycles/s) | ${cells.join(' | ')} | ${ci(R.compare(['podnetd', mode], ['limit', mode], 'throughput ratio'))} | ${ci(R.compare(['podnetd', mode], ['containerd', mode], 'throughput ratio'))} |`);
  }
  for (const row of rows) {
    const stat = row.stat ?? 'p50';
    const cells = cols.map((c) => {
      const s = row.steps[c] && F[c]?.[mode]?.[row.steps[c]];
      if (!s) return row.steps[c] && !F[c] ? '—' : '';
      return stat === 'mean' ? fmt(s.mean, dOf(s.mean)) : `${fmt(s.p50, dOf(s.p50))} / ${fmt(s.p95, dOf(s.p95))}`;
    });
    const ratio = (other) => (stat === 'p50' && row.steps.podnetd && row.steps[other] ? ci(R.compare(['podnetd', mode, row.steps.podnetd], [other, mode, row.steps[other]])) : '');
    out.push(`| ${row.label} | ${cells.join(' | ')} | ${ratio('limit')} | ${ratio('containerd')} |`);
  }
  return out.join('\n');
}

function scaleTable(R) {
  const S = R.scale;
  if (!S) return '';
  const rows = [
    [`creating ${S.running} at concurrency ${R.meta.sizes.scaleConcurrency} (wall ${fmt(S.create.wallMs / 1000)} s)`, `${fmt(S.create.podsPerSec)} pods/s`, ''],
    ['RunPodSandbox while creating: first 100 → last 100 (p50)', `${fmt(S.create.first100?.p50, 0)} → ${fmt(S.create.last100?.p50, 0)} ms`, ''],
    [`pod cycle with ${S.running} running, N=${S.podnetdCycle.cycle?.n}: podnetd / limit (p50)`, `${fmt(S.podnetdCycle.cycle?.p50, 0)} / ${fmt(S.limitCycle.cycle?.p50, 0)} ms`, 'the plugins slow down with the rules of every pod'],
    [`RunPodSandbox / limit total ADD with ${S.running} running (p50)`, `${fmt(S.podnetdCycle.run?.p50)} / ${fmt(S.limitCycle.totalAdd?.p50)} ms`, ''],
    [`StopPodSandbox / limit total DEL with ${S.running} running (p50)`, `${fmt(S.podnetdCycle.stop?.p50)} / ${fmt(S.limitCycle.totalDel?.p50)} ms`, ''],
    [`podnetd's own share of the cycle with ${S.running} running (cycle − plugins on the critical path, p50)`, `${fmt(S.podnetdCycle.cycleOutsidePlugins?.p50)} ms`, ''],
    [`ListPodSandbox, ${S.list.items} items (p50 / p95 of ${R.meta.sizes.listCalls})`, `${fmt(S.list.p50)} / ${fmt(S.list.p95)} ms`, 'issue 7: ≤ 20 ms'],
    [`podnetd RSS with ${S.running} running (VmRSS)`, `${fmt(S.rssMiB)} MiB`, 'issue 7: ≤ 150 MiB'],
    [`restart: SIGTERM → exit → start → Version answers (stop ${fmt(S.restart.stopMs, 0)} + start ${fmt(S.restart.startMs, 0)} ms)`, `${fmt(S.restart.totalMs, 0)} ms`, 'issue 7: ≤ 1500 ms'],
    ['RSS ~1 s after the restart', `${fmt(S.rssAfterRestartMiB)} MiB`, ''],
    ['node + module load only (`podnetd --version`)', `${fmt(S.bareStartMs, 0)} ms`, ''],
    [`read /proc/self/mountinfo, ${S.mountinfo.lines} lines (p50)`, `${fmt(S.mountinfo.p50)} ms`, 'what netns.exists() cost before it became one statfs'],
    [`stop + remove all ${S.running} at concurrency ${R.meta.sizes.scaleConcurrency} (wall ${fmt(S.teardown.wallMs / 1000)} s)`, `${fmt(S.teardown.podsPerSec)} pods/s`, ''],
  ];
  return ['| | podnetd | note |', '|---|--:|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function markdown(R) {
  const m = R.meta;
  const out = [];
  out.push(
    `podnet benchmark, ${m.date.slice(0, 19)}Z — ${m.cpus} × ${m.cpuModel ?? 'CPU'}, Linux ${m.kernel}, Node ${m.node}; plugins ${m.cniBin}; bridge+host-local → portmap (cniVersion 1.0.0), loopback added by each runtime.`,
    `Run time ${fmt(R.runtimeSec, 0)} s. N=${m.sizes.seq} sequential cycles per contender and scenario, interleaved cycle by cycle after ${m.sizes.warmup} warm-up rounds; ${m.sizes.par} at ${m.sizes.parK} in parallel in chunks of ${2 * m.sizes.parK}. Intervals: percentile bootstrap, ${m.bootstrapReps} resamplings of both samples, seeded by the comparison.`,
  );
  if (m.overridden.length > 0) out.push(`**Sizes overridden (${m.overridden.join(', ')}): a quick run, not for comparison.**`);
  out.push('', '**Contenders**', '');
  for (const c of CONTENDER_COLUMNS) {
    const st = R.contenders[c];
    out.push(`- \`${c}\` (${st?.label ?? c}): ${st?.why ? st.why : st ? 'ran' : 'not selected (BENCH_CONTENDERS)'}`);
  }
  out.push('', `**Targets** (no host port, sequential unless said; met when the whole 95 % interval is on the right side of the bound) — ${R.targets.filter((t) => t.result === 'PASS').length}/${R.targets.length} met`, '', targetsTable(R));
  for (const { name: scn, label } of R.meta.scenarios) {
    out.push('', `**${label}: sequential, ms**`, '', stepTable(R, `${scn}-seq`, SEQ_ROWS));
    out.push('', `**${label}: ${R.parK} in parallel, ms**`, '', stepTable(R, `${scn}-par${R.parK}`, PAR_ROWS, { throughput: true }));
  }
  if (R.scale) out.push('', `**Scale: ${R.scale.running} sandboxes running (one host port each)${R.scale.reduced ? `, REDUCED from ${R.scale.target}: ${R.scale.reducedWhy}` : ''}**`, '', scaleTable(R));
  if (R.leaks) out.push('', `Left behind after the run: ${R.leaks.iptablesRules} iptables rule(s) of the bench network, ${R.leaks.limitNetns} limit netns.`);
  return out.join('\n');
}

// node bench/report.mjs [latest.json]: the tables again from a run's saved samples.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { readFile } = await import('node:fs/promises');
  const R = JSON.parse(await readFile(process.argv[2] ?? new URL('results/latest.json', import.meta.url), 'utf8'));
  delete R.comparisons;
  process.stdout.write(`${markdown(analyse(R))}\n`);
}

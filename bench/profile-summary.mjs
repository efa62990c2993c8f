#!/usr/bin/env node
// Summarizes a V8 .cpuprofile (node --cpu-prof): top functions by self time and by inclusive
// time, and self time grouped by package. Usage: node bench/profile-summary.mjs FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Where a frame's code lives: "podnet:dist/cri/store.js", "npm:@grpc/grpc-js", "node:internal", "(native)"... */
export function packageOf(url) {
  if (!url) return '(native/V8)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return `npm:${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (url.startsWith('node:')) return url.startsWith('node:internal') ? 'node:internal' : url;
  const d = url.indexOf('/dist/');
  if (d >= 0) return `podnet:${url.slice(d + 1)}`;
  return url.replace(/^file:\/\//, '');
}

function frameKey(cf) {
  const fn = cf.functionName || '(anonymous)';
  const where = cf.url ? `${cf.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/')}:${cf.lineNumber + 1}` : '';
  return where ? `${fn} ${where}` : fn;
}

/** Reads a .cpuprofile and returns {totalMs, self, inclusive, byPackage} (arrays sorted by ms, desc). */
export function summarizeProfile(file) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map();
  for (const n of prof.nodes) byId.set(n.id, n);
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map();
  const inclUs = new Map();
  const pkgUs = new Map();
  let totalUs = 0;
  let idleUs = 0;
  const samples = prof.samples ?? [];
  const deltas = prof.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the gap after it to it (next delta).
    const dt = deltas[i + 1] ?? 0;
    const node = byId.get(samples[i]);
    if (!node) continue;
    const cf = node.callFrame;
    if (cf.functionName === '(idle)') {
      idleUs += dt;
      continue;
    }
    totalUs += dt;
    const key = frameKey(cf);
    selfUs.set(key, (selfUs.get(key) ?? 0) + dt);
    const pkg = cf.functionName === '(garbage collector)' ? '(gc)' : packageOf(cf.url);
    pkgUs.set(pkg, (pkgUs.get(pkg) ?? 0) + dt);
    const seen = new Set();
    for (let id = node.id; id !== undefined; id = parent.get(id)) {
      const k = frameKey(byId.get(id).callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      inclUs.set(k, (inclUs.get(k) ?? 0) + dt);
    }
  }
  const sorted = (m) => [...m.entries()].map(([name, us]) => ({ name, ms: us / 1000, pct: totalUs ? (100 * us) / totalUs : 0 })).sort((a, b) => b.ms - a.ms);
  return { totalMs: totalUs / 1000, idleMs: idleUs / 1000, self: sorted(selfUs), inclusive: sorted(inclUs), byPackage: sorted(pkgUs) };
}

export function formatSummary(s, top = 25) {
  const line = (r) => `${r.ms.toFixed(1).padStart(9)} ms ${r.pct.toFixed(1).padStart(5)}%  ${r.name}`;
  const out = [];
  out.push(`busy (non-idle) CPU time sampled: ${s.totalMs.toFixed(1)} ms; idle ${s.idleMs.toFixed(1)} ms`);
  out.push('', `-- self time by package --`);
  for (const r of s.byPackage.slice(0, 15)) out.push(line(r));
  out.push('', `-- top ${top} functions by self time --`);
  for (const r of s.self.slice(0, top)) out.push(line(r));
  out.push('', `-- top ${top} podnet (dist/) functions by inclusive time --`);
  for (const r of s.inclusive.filter((x) => x.name.includes(' dist/')).slice(0, top)) out.push(line(r));
  out.push('', `-- top ${top} dependency/node functions by inclusive time --`);
  for (const r of s.inclusive.filter((x) => !x.name.includes(' dist/') && !/^\((root|program|idle)\)/.test(x.name)).slice(0, top)) out.push(line(r));
  return out.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node bench/profile-summary.mjs FILE.cpuprofile [TOP]\n');
    process.exit(2);
  }
  process.stdout.write(`${formatSummary(summarizeProfile(file), Number(process.argv[3] ?? 25))}\n`);
}

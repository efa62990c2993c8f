#!/usr/bin/env node
// Summarizes V8 .heapsnapshot files: live heap by node type / constructor (self sizes), and with
// two files the growth from the first to the second. Usage:
//   node bench/heap-summary.mjs A.heapsnapshot [B.heapsnapshot] [TOP]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** {total, byKey: Map(key → {size, count})} of one snapshot; key = "type:name" for objects, else the type. */
export function heapBreakdown(file) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const nf = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const nodes = snap.nodes;
  const strings = snap.strings;
  const byKey = new Map();
  let total = 0;
  for (let i = 0; i < nodes.length; i += nf) {
    const type = types[nodes[i + iType]];
    const size = nodes[i + iSize];
    total += size;
    let key;
    if (type === 'object' || type === 'closure' || type === 'native') key = `${type}:${String(strings[nodes[i + iName]]).slice(0, 60)}`;
    else if (type === 'hidden' || type === 'code') key = type;
    else key = `(${type})`;
    const e = byKey.get(key) ?? { size: 0, count: 0 };
    e.size += size;
    e.count++;
    byKey.set(key, e);
  }
  return { total, byKey };
}

const mib = (b) => (b / 2 ** 20).toFixed(2);

export function formatBreakdown(a, b, top = 25) {
  const out = [];
  if (!b) {
    out.push(`live heap ${mib(a.total)} MiB`);
    for (const [k, v] of [...a.byKey].sort((x, y) => y[1].size - x[1].size).slice(0, top)) out.push(`${mib(v.size).padStart(9)} MiB ${String(v.count).padStart(8)}  ${k}`);
    return out.join('\n');
  }
  out.push(`live heap ${mib(a.total)} → ${mib(b.total)} MiB (+${mib(b.total - a.total)})`);
  const keys = new Set([...a.byKey.keys(), ...b.byKey.keys()]);
  const rows = [...keys].map((k) => {
    const x = a.byKey.get(k) ?? { size: 0, count: 0 };
    const y = b.byKey.get(k) ?? { size: 0, count: 0 };
    return { k, d: y.size - x.size, dc: y.count - x.count, size: y.size };
  });
  out.push('   growth MiB   +count   now MiB  kind');
  for (const r of rows.sort((p, q) => q.d - p.d).slice(0, top)) out.push(`${mib(r.d).padStart(12)} ${String(r.dc).padStart(8)} ${mib(r.size).padStart(9)}  ${r.k}`);
  return out.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [a, b, top] = process.argv.slice(2);
  if (!a) {
    process.stderr.write('usage: node bench/heap-summary.mjs A.heapsnapshot [B.heapsnapshot] [TOP]\n');
    process.exit(2);
  }
  const A = heapBreakdown(a);
  const B = b && !/^\d+$/.test(b) ? heapBreakdown(b) : undefined;
  process.stdout.write(`${formatBreakdown(A, B, Number((B ? top : b) ?? 25))}\n`);
}

#!/usr/bin/env node
// What one process spawn costs the spawning Node process (its own utime+stime), for the notes in
// bench/NOTES.md: plain child_process.spawn, execa with the options RawExec used before the
// helper, and podnet's SpawnHelper (dist/, so `make build` first; its own CPU is read from /proc
// and reported apart), in a small heap and with ~100 MiB of live heap (podnetd's size with many
// sandboxes; fork copies the page tables of the whole address space).
// Usage: node bench/spawn-cost.mjs [N=300]
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { SpawnHelper } from '../dist/spawner/helper.js';

const N = Number(process.argv[2] ?? 300);
const BIN = '/usr/lib/cni/loopback';
// A VERSION call: the plugin answers at once and touches nothing.
const STDIN = Buffer.from(JSON.stringify({ cniVersion: '1.0.0' }));
const ENV = { ...process.env, CNI_COMMAND: 'VERSION', CNI_PATH: '/usr/lib/cni' };

function plain() {
  return new Promise((resolve, reject) => {
    const c = spawn(BIN, [], { env: ENV, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out = [];
    c.stdout.on('data', (b) => out.push(b));
    c.stderr.resume();
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, stdout: Buffer.concat(out) }));
    c.stdin.on('error', () => undefined);
    c.stdin.end(STDIN);
  });
}

function viaExeca() {
  return execa(BIN, [], { input: STDIN, env: ENV, extendEnv: false, detached: true, reject: false, encoding: 'buffer', stripFinalNewline: false, maxBuffer: 16 * 1024 * 1024 });
}

const helper = new SpawnHelper();
function viaHelper() {
  return helper.spawn({ path: BIN, env: ENV, stdin: STDIN });
}
/** utime+stime of a process in ms (clock ticks of 10 ms). */
function procCpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

async function measure(name, fn) {
  for (let i = 0; i < 20; i++) await fn();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let blocked = 0;
  for (let i = 0; i < N; i++) {
    // Time the synchronous part (fork/exec on the main thread): the event loop is blocked for it.
    const s = performance.now();
    const p = fn();
    blocked += performance.now() - s;
    await p;
  }
  const c = process.cpuUsage(c0);
  const wall = performance.now() - t0;
  const rss = process.memoryUsage().rss / 2 ** 20;
  return { name, cpuMsPerSpawn: (c.user + c.system) / 1000 / N, userMs: c.user / 1000 / N, sysMs: c.system / 1000 / N, blockedMsPerSpawn: blocked / N, wallMsPerSpawn: wall / N, rssMiB: rss };
}

const rows = [];
rows.push(await measure('child_process.spawn, small heap', plain));
rows.push(await measure('execa (RawExec options), small heap', viaExeca));
await viaHelper();
let h0 = procCpuMs(helper.pid);
rows.push(await measure('podnet-spawner helper, small heap', viaHelper));
rows.at(-1).helperMsPerSpawn = (procCpuMs(helper.pid) - h0) / N;
// ~100 MiB of live objects, as a daemon with a thousand sandboxes holds.
const ballast = [];
for (let i = 0; i < 100; i++) ballast.push(Buffer.alloc(1 << 20, i).toString('latin1'));
rows.push(await measure('child_process.spawn, +100 MiB heap', plain));
rows.push(await measure('execa (RawExec options), +100 MiB heap', viaExeca));
h0 = procCpuMs(helper.pid);
rows.push(await measure('podnet-spawner helper, +100 MiB heap', viaHelper));
rows.at(-1).helperMsPerSpawn = (procCpuMs(helper.pid) - h0) / N;
await helper.close();
console.log(`spawn cost over ${N} spawns of ${BIN} VERSION (CPU of this process only; the child's own CPU is not counted)`);
console.log('| spawner | CPU ms/spawn | user | sys | main thread blocked ms/spawn | wall ms/spawn | RSS MiB | helper CPU ms/spawn |');
console.log('|---|--:|--:|--:|--:|--:|--:|--:|');
for (const r of rows) console.log(`| ${r.name} | ${r.cpuMsPerSpawn.toFixed(2)} | ${r.userMs.toFixed(2)} | ${r.sysMs.toFixed(2)} | ${r.blockedMsPerSpawn.toFixed(2)} | ${r.wallMsPerSpawn.toFixed(2)} | ${r.rssMiB.toFixed(0)} | ${r.helperMsPerSpawn === undefined ? '—' : r.helperMsPerSpawn.toFixed(2)} |`);
void ballast.length;

// Processes: running a program, and what /proc says about one (CPU, RSS, children, mounts).
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** Our environment minus any CNI_* (what podnet's executor gives plugins too). */
export const BASE_ENV = (() => {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('CNI_')) env[k] = v;
  env.PATH ||= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return env;
})();

/**
 * Runs a program with child_process.spawn: stdin written by hand, stdout/stderr collected.
 * detached (own process group) like podnet's plugin executor, so Ctrl-C on the bench does not
 * kill a plugin half-way; the exit is awaited either way.
 */
export function run(cmd, args, { input, env, detached = true } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: env ?? BASE_ENV, stdio: ['pipe', 'pipe', 'pipe'], detached });
    const out = [];
    const errOut = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => errOut.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? 128, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8') }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

export async function must(cmd, args, opts) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r;
}

let CLK_TCK = 100;
/** Reads the clock tick once; /proc/<pid>/stat counts CPU in ticks. */
export async function initClock() {
  CLK_TCK = Number((await run('getconf', ['CLK_TCK'], { detached: false })).stdout.trim()) || 100;
  return CLK_TCK;
}

/** utime+stime of a process, in ms. */
export async function cpuMs(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 of stat(5); f[0] is field 3 (state)
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

/** The podnet-spawner helpers among a daemon's children: their CPU is podnetd's too. */
async function helperPids(pid) {
  const out = [];
  for (const k of await childPids(pid)) if ((await readFile(`/proc/${k}/comm`, 'utf8').catch(() => '')).trim() === 'podnet-spawner') out.push(k);
  return out;
}

/** The children of a process's main thread. */
export async function childPids(pid) {
  return (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean).map(Number);
}

/** CPU of podnetd and its helper, split; plugins (the helper's children) are not counted. */
/** cpuMs() is a number, or {total, ...parts}: → {cpu: Δtotal, cpuPart: Δpart, ...} */
export function cpuDelta(a, b) {
  if (typeof a === 'number') return { cpu: b - a };
  const out = { cpu: b.total - a.total };
  for (const k of Object.keys(a)) if (k !== 'total') out[`cpu${k[0].toUpperCase()}${k.slice(1)}`] = b[k] - a[k];
  return out;
}

export async function daemonCpu(pid) {
  const helpers = await helperPids(pid);
  let helper = 0;
  for (const h of helpers) helper += await cpuMs(h).catch(() => 0);
  const daemon = await cpuMs(pid);
  return { daemon, helper, total: daemon + helper };
}

export async function rssMiB(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Mount points of nsfs below dir. */
export async function nsfsMountsUnder(dir) {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const out = [];
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep > 0 && f[4] && (f[4] === dir || f[4].startsWith(`${dir}/`)) && f[sep + 1] === 'nsfs') out.push(f[4]);
  }
  return out;
}

// node bench/run.mjs --heap: what podnetd's memory holds, idle, with SIZES.heapScale sandboxes,
// and after a restart with them on disk (/metrics, /proc/<pid>/smaps, heap snapshots summarised
// by bench/heap-summary.mjs) into bench/results/heap.txt.
import { randomInt } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OUT_DIR, SIZES } from './lib/config.mjs';
import { log, sleep } from './lib/cleanup.mjs';
import { daemonMemory, memLine } from './lib/daemon-memory.mjs';
import { podnetCycle, startPodnet } from './lib/podnetd.mjs';
import { setupRun } from './lib/setup.mjs';
import { pool } from './lib/stats.mjs';
import { formatBreakdown, heapBreakdown } from './heap-summary.mjs';

/** SIGUSR2 → podnetd (started with --heapsnapshot-signal) writes a snapshot into its cwd; returns its path. */
async function heapSnapshot(d) {
  const before = new Set(await readdir(d.root));
  process.kill(d.pid, 'SIGUSR2');
  for (;;) {
    await sleep(200);
    const file = (await readdir(d.root)).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    // The snapshot is written on the main thread: once Version answers again, the file is complete.
    if (file) {
      await d.call('version', d.api.VersionRequest.fromPartial({}), 120_000);
      return join(d.root, file);
    }
  }
}

/** RSS of a process by mapping (file, [heap], [stack], anonymous), largest first, from /proc/<pid>/smaps. */
async function smapsSummary(pid, top = 8) {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8');
  const by = new Map();
  let name = '';
  let anonTotal = 0;
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      name = head[1] || '[anonymous]';
      if (name.includes('/')) name = name.slice(name.lastIndexOf('/') + 1);
      continue;
    }
    const m = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (!m) continue;
    if (m[1] === 'Anonymous') {
      anonTotal += Number(m[2]);
      continue;
    }
    by.set(name, (by.get(name) ?? 0) + Number(m[2]));
  }
  const rows = [...by].sort((a, b) => b[1] - a[1]).slice(0, top).map(([n, kb]) => `${n} ${(kb / 1024).toFixed(1)}`);
  return `anonymous ${(anonTotal / 1024).toFixed(1)} MiB of RSS; by mapping (MiB): ${rows.join(', ')}`;
}

/** --heap: what podnetd's heap holds per sandbox, and after a restart with them on disk. */
export async function heapMain() {
  const run = await setupRun();
  const metricsAddress = `127.0.0.1:${randomInt(20000, 30000)}`;
  const d = await startPodnet(run, 'podnetd-heap', { nodeArgs: ['--heapsnapshot-signal=SIGUSR2'], extraTop: { metrics_address: metricsAddress } });
  // Memory figures first, snapshots after: a snapshot's own native allocations stay in RSS.
  for (let i = 0; i < 50; i++) await podnetCycle(d);
  const m0 = await daemonMemory(metricsAddress);
  const smaps0 = await smapsSummary(d.pid);
  log(`heap: idle after 50 cycles: ${memLine(m0)}`);
  const ids = [];
  await pool(SIZES.heapScale, SIZES.heapConcurrency, async () => ids.push(await d.runPod()));
  const m1 = await daemonMemory(metricsAddress);
  const smaps1 = await smapsSummary(d.pid);
  const s1 = heapBreakdown(await heapSnapshot(d));
  const m1gc = await daemonMemory(metricsAddress);
  log(`heap: ${ids.length} running: ${memLine(m1)}; after the snapshot's full GC: ${memLine(m1gc)}`);
  await d.stop();
  await d.start();
  await sleep(1000);
  const m2 = await daemonMemory(metricsAddress);
  const smaps2 = await smapsSummary(d.pid);
  const s2 = heapBreakdown(await heapSnapshot(d));
  const m2gc = await daemonMemory(metricsAddress);
  log(`heap: 1 s after a restart with ${ids.length}: ${memLine(m2)}; after the snapshot's full GC: ${memLine(m2gc)}`);
  await pool(ids.length, SIZES.scaleConcurrency, async (i) => {
    await d.stopPod(ids[i]);
    await d.removePod(ids[i]);
  });
  // Idle baseline for the live-heap comparison: the same (restarted) daemon with nothing left.
  const s3 = heapBreakdown(await heapSnapshot(d));
  await d.stop();
  for (const f of (await readdir(d.root)).filter((x) => x.endsWith('.heapsnapshot'))) await rm(join(d.root, f));
  const text = [
    `podnetd memory (${new Date().toISOString()}); heap snapshots via node --heapsnapshot-signal, summaries by bench/heap-summary.mjs`,
    `sandboxes created at concurrency ${SIZES.heapConcurrency}; memory figures from podnetd's /metrics (prom-client) and /proc/<pid>/smaps`,
    '',
    `idle after 50 cycles:          ${memLine(m0)}`,
    `  smaps: ${smaps0}`,
    `${ids.length} running:                   ${memLine(m1)}`,
    `  smaps: ${smaps1}`,
    `  after a full GC (snapshot):  ${memLine(m1gc)}`,
    `1 s after restart, ${ids.length} on disk: ${memLine(m2)}`,
    `  smaps: ${smaps2}`,
    `  after a full GC (snapshot):  ${memLine(m2gc)}`,
    '',
    `=== live heap (after full GC): idle (all removed, after the restart) → ${ids.length} running; per sandbox ${(((s1.total - s3.total) / ids.length) / 1024).toFixed(1)} KiB ===`,
    formatBreakdown(s3, s1, 20),
    '',
    `=== live heap: ${ids.length} running before the restart → 1 s after it ===`,
    formatBreakdown(s1, s2, 10),
    '',
  ].join('\n');
  await mkdir(OUT_DIR, { recursive: true });
  await writeFile(join(OUT_DIR, 'heap.txt'), text);
  process.stdout.write(text);
}


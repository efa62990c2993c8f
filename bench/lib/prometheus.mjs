// Prometheus text exposition, just enough to read counters and histogram sums/counts between calls.
import { createServer, get } from 'node:http';

/** GET http://127.0.0.1:<port><path> (plain, no Accept-Encoding) → the exposition text. */
export function scrapeHttp(port, path, what) {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, timeout: 10_000 }, (res) => {
      const chunks = [];
      res.on('data', (b) => chunks.push(b));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(new Error(`${what}: HTTP ${res.statusCode}`))));
      res.on('error', reject);
    })
      .on('timeout', function () {
        this.destroy(new Error(`${what}: no answer within 10 s`));
      })
      .on('error', reject);
  });
}

/** A loopback TCP port nothing listens on right now (for a daemon's metrics address). */
export function freeLoopbackPort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** text → Map of `name{k="v",...}` (labels sorted) → value. */
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    out.set(seriesKey(m[1], parseLabels(m[2] ?? '')), Number(m[3]));
  }
  return out;
}

function parseLabels(s) {
  const labels = {};
  for (const m of s.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]] = m[2];
  return labels;
}

function seriesKey(name, labels) {
  const keys = Object.keys(labels).sort();
  return keys.length === 0 ? name : `${name}{${keys.map((k) => `${k}="${labels[k]}"`).join(',')}}`;
}

/** One series' value (undefined when absent). */
export const metric = (m, name, labels = {}) => m.get(seriesKey(name, labels));

/**
 * What a histogram observed between two scrapes: {count, ms} (ms = Δsum in ms). With one call
 * between the scrapes and count 1, that is exactly the call's own timer.
 */
export function histogramDelta(before, after, name, labels = {}) {
  const c0 = metric(before, `${name}_count`, labels) ?? 0;
  const c1 = metric(after, `${name}_count`, labels) ?? 0;
  const s0 = metric(before, `${name}_sum`, labels) ?? 0;
  const s1 = metric(after, `${name}_sum`, labels) ?? 0;
  return { count: c1 - c0, ms: (s1 - s0) * 1000 };
}

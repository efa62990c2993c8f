// podnetd's memory as its own /metrics (prom-client's default metrics) reports it.

/** Memory figures from podnetd's own /metrics (prom-client default metrics), in MiB. */
export async function daemonMemory(address) {
  const res = await fetch(`http://${address}/metrics`);
  const text = await res.text();
  const get = (name, label) => {
    for (const line of text.split('\n')) {
      if (!line.startsWith(name) || (label && !line.includes(label))) continue;
      if (!label && line[name.length] !== ' ') continue;
      return Number(line.slice(line.lastIndexOf(' ') + 1)) / 2 ** 20;
    }
    return NaN;
  };
  return {
    rss: get('podnet_process_resident_memory_bytes'),
    heapTotal: get('podnet_nodejs_heap_size_total_bytes'),
    heapUsed: get('podnet_nodejs_heap_size_used_bytes'),
    external: get('podnet_nodejs_external_memory_bytes'),
    oldSpaceUsed: get('podnet_nodejs_heap_space_size_used_bytes', 'space="old"'),
  };
}
export const memLine = (m) => `RSS ${m.rss.toFixed(1)} MiB, V8 heap used ${m.heapUsed.toFixed(1)} / total ${m.heapTotal.toFixed(1)} MiB (old space used ${m.oldSpaceUsed.toFixed(1)}), external ${m.external.toFixed(1)} MiB`;


// The limit: the same plugins executed by hand, with nothing around them (no records, no result
// cache, no RPC), the namespace made by `ip netns add`. Its CPU is the bench process's own.
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { hex, log, onCleanup } from '../lib/cleanup.mjs';
import { execPlugin, versionAtLeast040 } from '../lib/cni-exec.mjs';
import { hostPort, LOOPBACK_LIST } from '../lib/network.mjs';
import { must, run as runProc } from '../lib/proc.mjs';

function newPod(withHostPort) {
  const id = hex(64);
  const short = id.slice(0, 8);
  const ns = `pnb-${hex(12)}`;
  return {
    id,
    ns,
    nsPath: `/run/netns/${ns}`,
    cniArgs: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-${short};K8S_POD_INFRA_CONTAINER_ID=${id};K8S_POD_UID=uid-${short}`,
    capabilityArgs: withHostPort ? { portMappings: [{ hostPort: hostPort(), containerPort: 80, protocol: 'tcp', hostIP: '127.0.0.1' }] } : {},
    result: undefined,
    nsCreated: false,
  };
}

export function limitContender(run) {
  const net = run.network.net;
  const [bridge, portmap] = net.plugins;
  /** Live pods (netns made, maybe plugins ADDed), for cleanup. */
  const live = new Set();
  let scenario;

  /** Best-effort DEL of a pod left behind by a failure. */
  async function forget(pod) {
    for (const [list, plugin, ifName] of [
      [net, portmap, 'eth0'],
      [net, bridge, 'eth0'],
      [LOOPBACK_LIST, LOOPBACK_LIST.plugins[0], 'lo'],
    ]) {
      await execPlugin('DEL', list, plugin, list === net ? pod.result : undefined, pod, ifName).catch((err) => log(`cleanup: ${err.message}`));
    }
    if (pod.nsCreated || existsSync(pod.nsPath)) await runProc('ip', ['netns', 'del', pod.ns]);
    live.delete(pod);
  }
  onCleanup('DEL leftover limit pods', async () => {
    if (live.size > 0) log(`cleanup: DEL of ${live.size} limit pod(s)`);
    for (const pod of [...live]) await forget(pod);
  });

  return {
    name: 'limit',
    label: 'limit',
    optional: false,
    available: async () => undefined,
    async setup(s) {
      scenario = s;
    },
    /** netns add, loopback ADD, bridge ADD, portmap ADD; then DEL in reverse and netns del. */
    async runCycle() {
      const pod = newPod(scenario.hostPort);
      const t = {};
      live.add(pod);
      const a0 = performance.now();
      await must('ip', ['netns', 'add', pod.ns]);
      pod.nsCreated = true;
      t.netnsAdd = performance.now() - a0;
      t.loAdd = (await execPlugin('ADD', LOOPBACK_LIST, LOOPBACK_LIST.plugins[0], undefined, pod, 'lo')).ms;
      const br = await execPlugin('ADD', net, bridge, undefined, pod, 'eth0');
      t.bridgeAdd = br.ms;
      pod.result = br.result;
      const pm = await execPlugin('ADD', net, portmap, br.result, pod, 'eth0');
      t.portmapAdd = pm.ms;
      pod.result = pm.result;
      t.totalAdd = performance.now() - a0;
      t.cniAdd = t.loAdd + t.bridgeAdd + t.portmapAdd;
      t.addOutsidePlugins = t.totalAdd - t.cniAdd;

      const d0 = performance.now();
      t.portmapDel = (await execPlugin('DEL', net, portmap, pod.result, pod, 'eth0')).ms;
      t.bridgeDel = (await execPlugin('DEL', net, bridge, pod.result, pod, 'eth0')).ms;
      // libcni sends the cached result on DEL only to lists of 0.4.0 and later; loopback's is 0.3.1.
      t.loDel = (await execPlugin('DEL', LOOPBACK_LIST, LOOPBACK_LIST.plugins[0], versionAtLeast040(LOOPBACK_LIST.cniVersion) ? pod.result : undefined, pod, 'lo')).ms;
      const n0 = performance.now();
      await must('ip', ['netns', 'del', pod.ns]);
      t.netnsDel = performance.now() - n0;
      t.totalDel = performance.now() - d0;
      t.cniDel = t.portmapDel + t.bridgeDel + t.loDel;
      t.delOutsidePlugins = t.totalDel - t.cniDel;
      t.cycle = t.totalAdd + t.totalDel;
      t.cycleOutsidePlugins = t.cycle - t.bridgeAdd - t.portmapAdd - t.cniDel;
      live.delete(pod);
      return t;
    },
    async teardown() {
      for (const pod of [...live]) await forget(pod);
    },
    // The bench runner's own CPU: what plain child_process.spawn costs for the same 8 processes.
    cpuMs() {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    },
  };
}

// podnetd over its CRI socket: Run → Status(verbose) → Stop → Remove with grpc-js, per-plugin
// times from the daemon's own pluginTimings, and each RPC's own time from the daemon's timer
// (/metrics, scraped before and after a detail cycle, as containerd's are). CPU is the daemon's
// plus its podnet-spawner helper's.
import { daemonCpu, rssMiB } from '../lib/proc.mjs';
import { podnetCycle, startPodnet } from '../lib/podnetd.mjs';

/** Verbose status calls measured to learn what one costs the daemon (the detail cycle's extra one). */
const CALIBRATION_CALLS = 100;

export function podnetdContender(run) {
  let d;
  let scenario;
  const c = {
    name: 'podnetd',
    label: 'podnetd',
    optional: false,
    available: async () => undefined,
    cpuOverheadMs: undefined,
    async setup(s) {
      scenario = s;
      d = await startPodnet(run, `podnetd-${s.name}`, { metrics: true });
    },
    // CPU is read inside the cycle, between the scrapes of the daemon's timers.
    cpuInCycle: true,
    runCycle({ detail }) {
      return podnetCycle(d, { delTimings: detail, withHostPort: scenario.hostPort, cpuMs: () => daemonCpu(d.pid) });
    },
    async teardown() {
      // A detail cycle makes one extra verbose status (after Stop, for the DEL timings): what
      // such a call costs the daemon is taken out of its CPU per cycle (the scrapes are outside
      // the CPU reading).
      if (d.running && c.cpuOverheadMs === undefined) {
        const probe = await d.runPod({ withHostPort: false });
        await d.stopPod(probe);
        const c0 = (await daemonCpu(d.pid)).total;
        for (let i = 0; i < CALIBRATION_CALLS; i++) await d.statusInfo(probe);
        const c1 = (await daemonCpu(d.pid)).total;
        await d.removePod(probe);
        c.cpuOverheadMs = (c1 - c0) / CALIBRATION_CALLS;
      }
      await d.dispose();
    },
    // {daemon, helper, total}: the table shows the split.
    cpuMs: () => daemonCpu(d.pid),
    rssMiB: () => rssMiB(d.pid),
  };
  return c;
}

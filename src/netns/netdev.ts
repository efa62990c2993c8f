import { InlineSpawner, type Spawner } from '../spawner/spawner.js';
import { NetnsError } from './netns.js';

/** The cumulative counters of one interface, from /proc/net/dev. */
export interface InterfaceCounters {
  name: string;
  rxBytes: bigint;
  rxPackets: bigint;
  rxErrors: bigint;
  txBytes: bigint;
  txPackets: bigint;
  txErrors: bigint;
}

/** Reads /proc/net/dev as a process inside a network namespace sees it. */
export interface NetDevReader {
  readNetDev(netnsPath: string): Promise<string>;
}

/** Bound on what a namespace's /proc/net/dev may be (one short line per interface). */
export const MAX_NETDEV_BYTES = 1024 * 1024;

/**
 * NetDevReader for `spawner = "inline"`: nsenter(1) joins the namespace and execs cat(1), started
 * through the Spawner (no shell). The helper does the same with a setns() of its own instead.
 */
export class CommandNetDevReader implements NetDevReader {
  constructor(private readonly spawner: Spawner = new InlineSpawner()) {}

  async readNetDev(netnsPath: string): Promise<string> {
    const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
    const r = await this.spawner.spawn({ path: 'nsenter', args: [`--net=${netnsPath}`, 'cat', '/proc/self/net/dev'], env, maxOutput: MAX_NETDEV_BYTES });
    if (r.exitCode !== 0) {
      throw new NetnsError(`read /proc/net/dev in network namespace ${netnsPath}: ${r.stderr.toString('utf8').trim() || `nsenter ${r.signal ?? `exit ${r.exitCode}`}`}`);
    }
    return r.stdout.toString('utf8');
  }
}

/**
 * Parses /proc/net/dev: two header lines, then `name: rx(bytes packets errs drop fifo frame
 * compressed multicast) tx(bytes packets errs drop fifo colls carrier compressed)`.
 */
export function parseNetDev(text: string): Map<string, InterfaceCounters> {
  const out = new Map<string, InterfaceCounters>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const f = line.slice(colon + 1).trim().split(/\s+/);
    if (!name || f.length < 16 || !f.every((x) => /^\d+$/.test(x))) continue;
    const n = (i: number): bigint => BigInt(f[i]);
    out.set(name, { name, rxBytes: n(0), rxPackets: n(1), rxErrors: n(2), txBytes: n(8), txPackets: n(9), txErrors: n(10) });
  }
  return out;
}

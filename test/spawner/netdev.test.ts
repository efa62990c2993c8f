// Interface counters read from inside a network namespace, both ways podnetd does it: the
// podnet-spawner helper (setns in the helper itself) and, for spawner = "inline", nsenter + cat
// started through the Spawner. Real namespaces in a temp dir, real traffic on their loopback.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandNetDevReader, parseNetDev, type NetDevReader } from '../../src/netns/netdev.js';
import { NetnsManager } from '../../src/netns/netns.js';
import { SpawnHelper } from '../../src/spawner/helper.js';
import { Cleanup, nsExec, tmpDir } from '../helpers/env.js';

const helper = new SpawnHelper();
const cleanup = new Cleanup();

afterAll(async () => {
  expect(await cleanup.run()).toEqual([]);
  await helper.close();
});

/** A namespace of ours with lo up and some bytes sent over it from inside. */
async function namespaceWithTraffic(bytes: number): Promise<string> {
  const dir = cleanup.dir(await tmpDir('podnet-netdev-'));
  const netns = new NetnsManager(dir, helper);
  const path = await netns.create();
  cleanup.push(() => netns.remove(path), `remove ${path}`);
  const up = await nsExec(path, 'ip', ['link', 'set', 'lo', 'up']);
  expect(up.exitCode, up.stderr).toBe(0);
  const send = `const s=require('node:dgram').createSocket('udp4');s.send(Buffer.alloc(${bytes}),9,'127.0.0.1',()=>s.close())`;
  const sent = await nsExec(path, process.execPath, ['-e', send]);
  expect(sent.exitCode, sent.stderr).toBe(0);
  return path;
}

describe('parseNetDev', () => {
  it('reads rx/tx bytes, packets and errors per interface and skips the headers', () => {
    const text = [
      'Inter-|   Receive                                                |  Transmit',
      ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
      '    lo:    1200      12    0    0    0     0          0         0     1200      12    0    0    0     0       0          0',
      '  eth0: 18446744073709551615 7 3 0 0 0 0 0 900 9 4 0 0 0 0 0',
      '  bad: 1 2 3',
      '',
    ].join('\n');
    const m = parseNetDev(text);
    expect([...m.keys()]).toEqual(['lo', 'eth0']);
    expect(m.get('eth0')).toEqual({ name: 'eth0', rxBytes: 18446744073709551615n, rxPackets: 7n, rxErrors: 3n, txBytes: 900n, txPackets: 9n, txErrors: 4n });
  });
});

const READERS: Array<[string, NetDevReader]> = [
  ['helper', helper],
  ['inline (nsenter through the Spawner)', new CommandNetDevReader()],
];

describe.each(READERS)('%s reader', (_name, reader) => {
  it("sees the namespace's own interfaces and counters, not the host's", async () => {
    const ns = await namespaceWithTraffic(1500);
    const counters = parseNetDev(await reader.readNetDev(ns));
    expect([...counters.keys()]).toEqual(['lo']);
    expect(counters.get('lo')!.rxBytes).toBeGreaterThanOrEqual(1500n);
    expect(counters.get('lo')!.txBytes).toBeGreaterThanOrEqual(1500n);
    // The reader came back to the host namespace: a second read of another namespace is its own.
    const other = parseNetDev(await reader.readNetDev(await namespaceWithTraffic(100)));
    expect(other.get('lo')!.rxBytes).toBeLessThan(counters.get('lo')!.rxBytes);
  });

  it('fails with the path named when the file is not a network namespace', async () => {
    const dir = cleanup.dir(await tmpDir('podnet-netdev-'));
    const plain = join(dir, 'not-a-namespace');
    await writeFile(plain, '');
    await expect(reader.readNetDev(plain)).rejects.toThrow(plain);
    await expect(reader.readNetDev(join(dir, 'missing'))).rejects.toThrow(join(dir, 'missing'));
  });
});

describe('helper', () => {
  it('spawns in the host namespace again after a namespace read', async () => {
    await helper.readNetDev(await namespaceWithTraffic(10));
    const r = await helper.spawn({ path: '/bin/cat', args: ['/proc/self/net/dev'], env: {} });
    const host = parseNetDev(await readFile('/proc/self/net/dev', 'utf8'));
    expect([...parseNetDev(r.stdout.toString()).keys()].sort()).toEqual([...host.keys()].sort());
  });
});

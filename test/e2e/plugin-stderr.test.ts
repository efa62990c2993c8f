// podnetd logs what a plugin writes to stderr on success (libcni passes it on to its own stderr),
// naming the plugin, the network and the sandbox. The real daemon runs a chain whose first plugin
// is the recording record-env (it writes the config's "stderr" text), then the real bridge.
import { afterEach, describe, expect, it } from 'vitest';
import { TEST_PLUGIN_PATH } from '../helpers/env.js';
import { disposeAll, expectNothingLeft, inSubnet, newRoot, podConfig, startDaemon, testNetwork } from './harness.js';

afterEach(async () => {
  const errors = await disposeAll();
  expect(errors.map((e) => e.message)).toEqual([]);
});

describe('plugin stderr', () => {
  it('is logged with plugin, network, verb and sandbox, and the pod still gets its IP', async () => {
    const root = await newRoot();
    const net = testNetwork(root);
    const list = JSON.parse(net.text) as { plugins: Array<Record<string, unknown>> };
    list.plugins.unshift({ type: 'record-env', stderr: 'deprecated option used' });
    const d = await startDaemon({ root, confFiles: { '10-net.conflist': JSON.stringify(list) }, cni: { bin_dirs: [...TEST_PLUGIN_PATH] } });
    const id = await d.rpc.run(podConfig());
    const ip = (await d.rpc.status(id)).status?.network?.ip ?? '';
    expect(inSubnet(ip, net.subnet), ip).toBe(true);
    const lines = d.logs.filter((l) => l['msg'] === 'plugin wrote to stderr');
    expect(lines.map((l) => [l['plugin'], l['network'], l['verb'], l['sandbox'], l['ifName'], l['stderr']])).toEqual([
      ['record-env', net.name, 'ADD', id, 'eth0', 'deprecated option used\n'],
    ]);
    await d.rpc.stop(id);
    expect(d.logs.filter((l) => l['msg'] === 'plugin wrote to stderr' && l['verb'] === 'DEL')).toHaveLength(1);
    await d.rpc.remove(id);
    await d.stop();
    await expectNothingLeft();
  });
});

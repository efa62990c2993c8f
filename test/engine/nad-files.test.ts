// NetworkAttachmentDefinition files read as Multus reads NADs: test/fixtures/multus holds our own
// files in the shapes Multus's documentation and kubectl use (see its README.md).
import { afterAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { confListFromBytes, type NetworkConfigList } from '../../src/cni/config.js';
import { NADStore, nadConfList, parseNetworksAnnotation, resolveAttachments, type NAD } from '../../src/engine/attachments.js';
import { Cleanup, tmpDir } from '../helpers/env.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'multus');
const cleanup = new Cleanup();

afterAll(async () => {
  expect(await cleanup.run()).toEqual([]);
});

async function dirWith(files: Record<string, string>): Promise<string> {
  const dir = cleanup.dir(await tmpDir('podnet-nads-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

const nadOf = (nads: Map<string, NAD>, key: string): NAD => {
  const nad = nads.get(key);
  expect(nad, key).toBeDefined();
  return nad!;
};

describe('NAD files in the shapes Multus documents', () => {
  it('loads every NAD of every shape, with metadata.namespace defaulting to "default"', async () => {
    const { nads, errors } = await new NADStore(FIXTURES).load();
    expect(errors).toEqual([]);
    expect([...nads.keys()].sort()).toEqual([
      'default/from-conf-dir',
      'default/listed-one',
      'default/storage-a',
      'team-b/storage-b',
      'team-c/multi-one',
      'team-c/multi-two',
      'team-d/listed-two',
      'team-e/api-one',
    ]);
    expect(nadOf(nads, 'default/listed-one').file).toBe(join(FIXTURES, 'kubectl-list.yaml'));
    expect(nadOf(nads, 'team-e/api-one').file).toBe(join(FIXTURES, 'api-list.json'));
  });

  it('passes over documents of another kind, saying which and why', async () => {
    const { skipped } = await new NADStore(FIXTURES).load();
    expect(skipped).toEqual([
      { file: join(FIXTURES, 'not-a-nad.yaml'), reason: 'kind "Pod" is not a NetworkAttachmentDefinition' },
      { file: join(FIXTURES, 'several.yaml'), reason: 'document 2: kind "ConfigMap" is not a NetworkAttachmentDefinition' },
    ]);
  });

  it('a spec.config with no "name", or an empty one, gets the NAD\'s metadata.name, as Multus injects it', async () => {
    const { nads } = await new NADStore(FIXTURES).load();
    const a = nadConfList(nadOf(nads, 'default/storage-a'))!;
    expect([a.name, a.declaredVersion, a.plugins.map((p) => p.type)]).toEqual(['storage-a', '0.3.1', ['macvlan']]);
    expect((JSON.parse(a.bytes.toString()) as { name: string }).name).toBe('storage-a');
    expect(nadConfList(nadOf(nads, 'team-b/storage-b'))!.name).toBe('storage-b');
    expect(nadConfList(nadOf(nads, 'team-c/multi-two'))!.name).toBe('multi-two');
    expect(nadConfList(nadOf(nads, 'default/listed-one'))!.name).toBe('listed-one');
    // A name that is there is kept.
    expect(nadConfList(nadOf(nads, 'team-c/multi-one'))!.name).toBe('multi-one');
    // No spec (or an empty spec.config): the conf-dir network of the NAD's name.
    expect(nadConfList(nadOf(nads, 'default/from-conf-dir'))).toBeUndefined();
  });

  it('a pod asking for them gets each, the spec-less one from the conf dir', async () => {
    const { nads } = await new NADStore(FIXTURES).load();
    const confDirNet = confListFromBytes(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'from-conf-dir', plugins: [{ type: 'bridge', bridge: 'pn-fixture9' }] })));
    const find = (name: string): NetworkConfigList | undefined => (name === confDirNet.name ? confDirNet : undefined);
    const sels = parseNetworksAnnotation('storage-a, team-b/storage-b@stor1, from-conf-dir, team-e/api-one', 'default');
    const records = resolveAttachments(sels, nads, find, ['eth0']);
    expect(records.map((r) => [r.network, r.ifName, r.ref])).toEqual([
      ['storage-a', 'net1', 'default/storage-a'],
      ['storage-b', 'stor1', 'team-b/storage-b'],
      ['from-conf-dir', 'net3', 'default/from-conf-dir'],
      ['api-one', 'net4', 'team-e/api-one'],
    ]);
    expect(Buffer.from(records[2].config, 'base64').equals(confDirNet.bytes)).toBe(true);
    expect(() => resolveAttachments(parseNetworksAnnotation('from-conf-dir', 'default'), nads, () => undefined, [])).toThrow(
      /has no spec\.config and no conf-dir network is named "from-conf-dir"/,
    );
  });
});

describe('NAD files that are broken', () => {
  it('reports a NAD without metadata.name, a bad namespace, a non-string spec.config and a List without items; the rest of the file loads', async () => {
    const dir = await dirWith({
      'mixed.yaml': [
        'kind: NetworkAttachmentDefinition\nmetadata: {}\nspec: { config: "{}" }',
        'kind: NetworkAttachmentDefinition\nmetadata: { name: bad-ns, namespace: "Team_X" }',
        'kind: NetworkAttachmentDefinition\nmetadata: { name: obj-config }\nspec: { config: { type: bridge } }',
        'kind: List\nmetadata: {}',
        'kind: NetworkAttachmentDefinition\nmetadata: { name: fine }\nspec: { config: \'{"cniVersion":"1.0.0","type":"bridge"}\' }',
      ].join('\n---\n'),
    });
    const { nads, errors } = await new NADStore(dir).load();
    expect([...nads.keys()]).toEqual(['default/fine']);
    const file = join(dir, 'mixed.yaml');
    expect(errors).toEqual([
      { file, reason: 'document 1: metadata.name is required' },
      { file, reason: 'document 2: metadata.namespace of bad-ns is not a DNS-1123 label' },
      { file, reason: 'document 3: spec.config of default/obj-config must be a string (the CNI config as JSON text)' },
      { file, reason: 'document 4: a List needs an "items" list' },
    ]);
  });

  it('a YAML error spoils only its document; another API group is passed over; the first of two same-named NADs is kept', async () => {
    const dir = await dirWith({
      'a.yaml': 'kind: NetworkAttachmentDefinition\nmetadata: { name: dup }\nspec: { config: \'{"cniVersion":"1.0.0","type":"ptp"}\' }',
      'b.yaml': [
        'kind: NetworkAttachmentDefinition\nmetadata: { name: dup }\nspec: { config: \'{"cniVersion":"1.0.0","type":"bridge"}\' }',
        'kind: NetworkAttachmentDefinition\nmetadata: { name: [unclosed',
        'apiVersion: example.com/v1\nkind: NetworkAttachmentDefinition\nmetadata: { name: foreign }',
        'apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: { name: good }',
      ].join('\n---\n'),
    });
    const { nads, errors, skipped } = await new NADStore(dir).load();
    expect([...nads.keys()].sort()).toEqual(['default/dup', 'default/good']);
    expect(nads.get('default/dup')!.file).toBe(join(dir, 'a.yaml'));
    expect(errors.map((e) => e.reason)).toEqual([
      `document 1: NetworkAttachmentDefinition default/dup is already defined in ${join(dir, 'a.yaml')}; the first one is used`,
      expect.stringMatching(/^document 2: /),
    ]);
    expect(skipped).toEqual([{ file: join(dir, 'b.yaml'), reason: 'document 3: apiVersion "example.com/v1" is not k8s.cni.cncf.io/v1' }]);
  });

  it('a spec.config that is not a CNI config is an error naming why', async () => {
    const dir = await dirWith({ 'x.yaml': 'kind: NetworkAttachmentDefinition\nmetadata: { name: notjson }\nspec: { config: "[1, 2]" }' });
    const { nads } = await new NADStore(dir).load();
    expect(() => nadConfList(nads.get('default/notjson')!)).toThrow('spec.config must be a JSON object');
  });
});

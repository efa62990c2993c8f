// `podnet validate` reports the attachments dir too: every NetworkAttachmentDefinition as podnetd
// reads it (Multus's reading: injected names, spec-less NADs from the conf dir), documents of
// other kinds as skipped with why. The NAD files are test/fixtures/multus's; VERSION runs on the
// real plugins.
import { afterEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cleanup, PLUGIN_DIRS, tmpDir } from '../helpers/env.js';

const PODNET = join(import.meta.dirname, '../../bin/podnet');
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'multus');

interface Row {
  file: string;
  network: string;
  verdict: string;
}

describe('podnet validate --attachments-dir', () => {
  const cleanup = new Cleanup();
  afterEach(async () => {
    expect(await cleanup.run()).toEqual([]);
  });

  async function validate(confDir: string, nadDir: string): Promise<{ exitCode: number; rows: Row[] }> {
    const r = await execa(PODNET, ['validate', '--conf-dir', confDir, '--attachments-dir', nadDir, '--cni-bin-dir', PLUGIN_DIRS.join(':'), '--json'], { reject: false });
    return { exitCode: r.exitCode ?? -1, rows: JSON.parse(r.stdout) as Row[] };
  }

  it('lists each NAD with its verdict and each document of another kind as skipped', async () => {
    const root = cleanup.dir(await tmpDir('podnet-validate-nads-'));
    const confDir = join(root, 'net.d');
    await mkdir(confDir);
    await writeFile(join(confDir, '10-from.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'from-conf-dir', plugins: [{ type: 'bridge', bridge: 'pn-unused0' }] }));
    const { exitCode, rows } = await validate(confDir, FIXTURES);
    const byNetwork = new Map(rows.map((r) => [r.network, r.verdict]));
    for (const ok of ['default/storage-a', 'team-b/storage-b', 'team-c/multi-one', 'team-c/multi-two', 'default/listed-one', 'team-d/listed-two', 'team-e/api-one']) {
      expect(byNetwork.get(ok), ok).toBe('ok');
    }
    expect(byNetwork.get('default/from-conf-dir')).toBe(`ok: no spec.config, uses the conf-dir network "from-conf-dir" (${join(confDir, '10-from.conflist')})`);
    expect(rows.filter((r) => r.verdict.startsWith('skipped')).map((r) => [r.file, r.verdict])).toEqual([
      [join(FIXTURES, 'not-a-nad.yaml'), 'skipped: kind "Pod" is not a NetworkAttachmentDefinition'],
      [join(FIXTURES, 'several.yaml'), 'skipped: document 2: kind "ConfigMap" is not a NetworkAttachmentDefinition'],
    ]);
    // Skipped documents are information, not errors.
    expect(exitCode).toBe(0);
  });

  it('exits 1 on a broken NAD, a bad spec.config and a spec-less NAD with no conf-dir network', async () => {
    const root = cleanup.dir(await tmpDir('podnet-validate-nads-'));
    const nadDir = join(root, 'attachments.d');
    await cp(FIXTURES, nadDir, { recursive: true });
    await writeFile(join(nadDir, 'zz-broken.yaml'), 'kind: NetworkAttachmentDefinition\nmetadata: {}\n---\nkind: NetworkAttachmentDefinition\nmetadata: { name: badjson }\nspec: { config: "{nope" }\n');
    const { exitCode, rows } = await validate(join(root, 'empty-net.d'), nadDir);
    expect(exitCode).toBe(1);
    const verdictOf = (network: string): string | undefined => rows.find((r) => r.network === network)?.verdict;
    expect(rows.find((r) => r.file.endsWith('zz-broken.yaml') && r.network === '-')!.verdict).toBe('error: document 1: metadata.name is required');
    expect(verdictOf('default/badjson')).toMatch(/^error: spec\.config of default\/badjson is not a valid CNI config/);
    expect(verdictOf('default/from-conf-dir')).toBe('error: no spec.config and no conf-dir network is named "from-conf-dir"');
  });
});

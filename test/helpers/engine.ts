// The engine as the engine, door and hot-plug tests build it: every dir under the test's root,
// the test plugins first on the path, networks loaded from the conf dir.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CNIConfig } from '../../src/cni/cni.js';
import { defaultConfig, type DaemonConfig } from '../../src/cri/config.js';
import { NADStore } from '../../src/engine/attachments.js';
import { Engine } from '../../src/engine/engine.js';
import { NetworkManager } from '../../src/engine/network-manager.js';
import { NetnsLedger, SandboxStore } from '../../src/engine/store.js';
import type { EngineObserver } from '../../src/engine/types.js';
import { NetnsManager } from '../../src/netns/netns.js';
import { InlineSpawner } from '../../src/spawner/spawner.js';
import { TEST_PLUGIN_PATH } from './env.js';

/** podnetd's defaults with state, namespaces, NADs, conf dir and cache under root. */
export function engineTestConfig(root: string, cni: Partial<DaemonConfig['cni']> = {}): DaemonConfig {
  const cfg = defaultConfig();
  cfg.stateDir = join(root, 'state');
  cfg.netnsDir = join(root, 'netns');
  cfg.attachmentsDir = join(root, 'nads');
  cfg.cni = { ...cfg.cni, binDirs: [...TEST_PLUGIN_PATH], confDir: join(root, 'conf'), cacheDir: join(root, 'cache'), ...cni };
  return cfg;
}

/**
 * An engine over cfg's dirs (a fresh one on the same dirs is the engine after a restart), its
 * networks loaded and never polled again; the caller stops `networks`.
 */
export async function startTestEngine(cfg: DaemonConfig, log: Logger, observer?: EngineObserver): Promise<{ engine: Engine; networks: NetworkManager }> {
  const cni = new CNIConfig({ path: cfg.cni.binDirs, cacheDir: cfg.cni.cacheDir });
  const networks = new NetworkManager(cfg, cni, log, 3_600_000);
  await networks.start();
  const engine = new Engine({
    cfg,
    store: new SandboxStore(cfg.stateDir),
    ledger: new NetnsLedger(cfg.stateDir),
    netns: new NetnsManager(cfg.netnsDir),
    networks,
    nads: new NADStore(cfg.attachmentsDir),
    spawner: new InlineSpawner(),
    log,
    ...(observer ? { observer } : {}),
  });
  return { engine, networks };
}

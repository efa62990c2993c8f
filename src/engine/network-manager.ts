import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { CNIConfig } from '../cni/cni.js';
import { loadConfDir, type ConfigLoadError, type NetworkConfigList } from '../cni/config.js';
import { errorMessage } from '../cni/errors.js';
import { Networks } from '../cni/networks.js';
import { dirSignature } from './dir-signature.js';
import { invalidArgument } from './errors.js';
import { quote } from '../util/quote.js';
import type { EngineConfig } from './types.js';

/**
 * inode and mtime of each plugin dir: adding, removing or renaming an entry changes the dir's
 * mtime, which is all a cached plugin path depends on (a binary replaced in place keeps its path).
 */
async function binDirsSignature(dirs: readonly string[]): Promise<string> {
  const parts = await Promise.all(dirs.map((d) => stat(d).then((st) => `${st.ino}:${st.mtimeMs}`, () => 'missing')));
  return parts.join('|');
}

/** The conf dir of one runtime handler (or the default) and what was last loaded from it. */
interface NetworkSource {
  name: string;
  confDir: string;
  maxConfNum: number;
  current: Networks;
  errors: ConfigLoadError[];
  signature: string;
  loadedAt: Date | undefined;
  watchers: FSWatcher[];
  timer: NodeJS.Timeout | undefined;
}

export interface NetworkStatus {
  ready: boolean;
  message: string;
}

export const DEFAULT_SOURCE = 'default';

/** Told after each load of a conf dir: the files that loaded and the ones that were rejected. */
export type ConfigLoadObserver = (source: string, loaded: string[], rejected: string[]) => void;

/**
 * Loads each conf dir into an immutable Networks and swaps in a new one when the dir changes.
 * In-flight setups keep the Networks they started with; nothing waits on a reload.
 */
export class NetworkManager {
  readonly cni: CNIConfig;
  private readonly sources = new Map<string, NetworkSource>();
  private pollTimer: NodeJS.Timeout | undefined;
  private binDirsSignature = '';
  private reloading = new Map<string, Promise<void>>();

  constructor(
    private readonly cfg: EngineConfig,
    cni: CNIConfig,
    private readonly log: Logger,
    private readonly pollMs = 1000,
    private readonly onLoad?: ConfigLoadObserver,
  ) {
    this.cni = cni;
    const mk = (name: string, confDir: string, maxConfNum: number): NetworkSource => ({
      name,
      confDir,
      maxConfNum: maxConfNum || 1,
      current: Networks.fromLists(cni, [], { confDir }),
      errors: [],
      signature: '',
      loadedAt: undefined,
      watchers: [],
      timer: undefined,
    });
    this.sources.set(DEFAULT_SOURCE, mk(DEFAULT_SOURCE, cfg.cni.confDir, cfg.cni.maxConfNum));
    for (const [handler, h] of Object.entries(cfg.runtimes)) {
      if (h.cniConfDir) this.sources.set(handler, mk(handler, h.cniConfDir, h.cniMaxConfNum ?? cfg.cni.maxConfNum));
    }
  }

  async start(): Promise<void> {
    await Promise.all([...this.sources.values()].map((s) => this.reload(s)));
    for (const s of this.sources.values()) this.watch(s);
    this.binDirsSignature = await binDirsSignature(this.cfg.cni.binDirs);
    this.pollTimer = setInterval(() => {
      for (const s of this.sources.values()) void this.reloadIfChanged(s);
      void this.checkBinDirs();
    }, this.pollMs);
    this.pollTimer.unref();
  }

  /** The plugin dirs changed (a plugin added, removed, renamed): plugin paths are looked up again. */
  private async checkBinDirs(): Promise<void> {
    const sig = await binDirsSignature(this.cfg.cni.binDirs);
    if (sig === this.binDirsSignature) return;
    this.binDirsSignature = sig;
    this.cni.invalidatePluginPaths();
    this.log.info({ binDirs: this.cfg.cni.binDirs }, 'plugin dirs changed; plugin paths will be looked up again');
  }

  stop(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    for (const s of this.sources.values()) {
      s.watchers.forEach((w) => w.close());
      s.watchers = [];
      if (s.timer) clearTimeout(s.timer);
    }
  }

  /** The handlers a pod may ask for: the default one, and every [runtimes.<name>]. */
  declaredHandlers(): string[] {
    return [...new Set([this.cfg.defaultRuntimeHandler, ...Object.keys(this.cfg.runtimes)])].sort();
  }

  /** The networks for a runtime handler: its own conf dir if it has one, else the default. */
  forHandler(handler: string): Networks {
    if (handler !== '' && handler !== this.cfg.defaultRuntimeHandler && !Object.hasOwn(this.cfg.runtimes, handler)) {
      throw invalidArgument(`runtime handler ${quote(handler)} is not declared; declared handlers: ${this.declaredHandlers().join(', ')}`);
    }
    return (this.sources.get(handler) ?? this.sources.get(DEFAULT_SOURCE)!).current;
  }

  /** One network of any conf dir, by name, as the pod's only conf-dir network (with loopback, as every Networks). */
  forNetwork(name: string): Networks | undefined {
    const list = this.findNetwork(name);
    return list && Networks.fromLists(this.cni, [list], { confDir: list.source ? dirname(list.source) : '' });
  }

  /** Every conf dir's networks, for GC and recovery. */
  allNetworks(): Networks[] {
    return [...this.sources.values()].map((s) => s.current);
  }

  /** A network of any loaded source, by name. */
  findNetwork(name: string): NetworkConfigList | undefined {
    for (const s of this.sources.values()) {
      const n = s.current.networks.find((l) => l.name === name);
      if (n) return n;
    }
    return undefined;
  }

  status(name = DEFAULT_SOURCE): NetworkStatus {
    const s = this.sources.get(name) ?? this.sources.get(DEFAULT_SOURCE)!;
    if (s.current.ready()) {
      const names = s.current.networks.map((l) => l.name).join(', ');
      const broken = s.errors.length ? `; ignored: ${s.errors.map((e) => `${e.file}: ${e.reason}`).join('; ')}` : '';
      return { ready: true, message: `networks [${names}] loaded from ${s.confDir}${broken}` };
    }
    if (s.errors.length === 0) return { ready: false, message: `cni plugin not initialized: no network config found in ${s.confDir}` };
    return {
      ready: false,
      message: `cni plugin not initialized: no valid network config in ${s.confDir}: ${s.errors.map((e) => `${e.file}: ${e.reason}`).join('; ')}`,
    };
  }

  /** What `crictl info` shows: per source, the loaded networks and the load errors. */
  info(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const s of this.sources.values()) {
      out[s.name] = {
        confDir: s.confDir,
        maxConfNum: s.maxConfNum,
        loadedAt: s.loadedAt?.toISOString() ?? null,
        status: this.status(s.name).message,
        networks: s.current.attachments.map((a) => ({
          ifName: a.ifName,
          name: a.list.name,
          cniVersion: a.list.cniVersion,
          source: a.list.source ?? null,
          plugins: a.list.plugins.map((p) => p.raw),
        })),
        errors: s.errors,
      };
    }
    return out;
  }

  /** Forces a reload of every source now (tests, UpdateRuntimeConfig after writing a template). */
  async reloadAll(): Promise<void> {
    await Promise.all([...this.sources.values()].map((s) => this.reload(s)));
  }

  private watch(s: NetworkSource): void {
    const kick = (): void => {
      if (s.timer) clearTimeout(s.timer);
      s.timer = setTimeout(() => void this.reloadIfChanged(s), 50);
      s.timer.unref();
    };
    for (const dir of [s.confDir, dirname(s.confDir)]) {
      try {
        const w = watch(dir, { persistent: false }, kick);
        w.on('error', () => w.close());
        s.watchers.push(w);
      } catch {
        // The dir may not exist yet; the poll covers it until it does.
      }
    }
  }

  private async reloadIfChanged(s: NetworkSource): Promise<void> {
    const sig = await dirSignature(s.confDir);
    if (sig === s.signature) return;
    const watchedGone = s.signature === 'missing' || sig === 'missing';
    await this.reload(s);
    if (watchedGone) {
      // The dir itself came or went: its old inode's watch is dead, watch the new one.
      s.watchers.forEach((w) => w.close());
      s.watchers = [];
      this.watch(s);
    }
  }

  private reload(s: NetworkSource): Promise<void> {
    // One reload per source at a time; a change during a reload is picked up by the next poll.
    const running = this.reloading.get(s.name);
    if (running) return running;
    const p = this.doReload(s).finally(() => this.reloading.delete(s.name));
    this.reloading.set(s.name, p);
    return p;
  }

  private async doReload(s: NetworkSource): Promise<void> {
    const signature = await dirSignature(s.confDir);
    const { lists, errors } = await loadConfDir(s.confDir);
    const usable: NetworkConfigList[] = [];
    for (const list of lists) {
      try {
        // A list whose binaries are missing would fail every pod: treat it as a broken config.
        for (const p of list.plugins) await this.cni.getPluginPath(p.type);
        usable.push(list);
      } catch (err) {
        errors.push({ file: list.source ?? list.name, reason: errorMessage(err) });
      }
    }
    s.signature = signature;
    s.errors = errors;
    this.onLoad?.(s.name, usable.map((l) => l.source ?? l.name), errors.map((e) => e.file));
    if (usable.length === 0 && errors.length > 0 && s.current.ready()) {
      // A broken edit: keep serving the last good networks, and say why in Status.
      this.log.warn({ confDir: s.confDir, errors }, 'network config reload failed; keeping the last good config');
      return;
    }
    s.current = Networks.fromLists(this.cni, usable.slice(0, s.maxConfNum), { confDir: s.confDir }, errors);
    s.loadedAt = new Date();
    this.log.info({ confDir: s.confDir, networks: usable.map((l) => l.name), errors }, 'network config loaded');
  }
}

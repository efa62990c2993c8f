// Hot-plug: attach and detach one network on a ready pod. The attachment's phase (`adding`,
// `ready`, `removing`) is in the record before any plugin runs, so a crash at any point leaves a
// record that recovery finishes or undoes while the pod stays ready.
import type { Logger } from 'pino';
import type { NetworkConfigList } from '../cni/config.js';
import { delAttachment, summarize, type SetupResult } from '../cni/networks.js';
import { toCurrent, type Result } from '../cni/result.js';
import { validateIfName, type RuntimeConf } from '../cni/runtime-conf.js';
import { quote } from '../util/quote.js';
import { nadConfList, parseNetworkElement, resolveAttachments, type NAD, type NADStore } from './attachments.js';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, toEngineError } from './errors.js';
import type { NetworkManager } from './network-manager.js';
import { networkStatus } from './network-status.js';
import type { AttachmentRecord, SandboxRecord, SandboxStore } from './store.js';
import { withTimeout } from '../util/timeout.js';
import type { AttachOutcome, AttachSelection, Door, EngineConfig, EngineObserver, HotplugEngine, NetworkStatusEntry } from './types.js';

/** What hot-plug needs of the engine: its parts, and the few steps it shares with setUp/tearDown. */
export interface HotplugHost {
  cfg: EngineConfig;
  store: SandboxStore;
  nads: NADStore;
  networks: NetworkManager;
  log: Logger;
  observer: EngineObserver;
  /** Runs fn under the sandbox's lock as ADD/DEL work (bounded by max_concurrent_setups, never during CNI GC). */
  locked<T>(id: string, fn: () => Promise<T>): Promise<T>;
  /** Resolves once no recovery runs. */
  recovered(): Promise<void>;
  /** The network config list an attachment was recorded with. */
  list(rec: SandboxRecord, a: AttachmentRecord): NetworkConfigList;
  runtimeConf(rec: SandboxRecord, a: AttachmentRecord, netNS: string): RuntimeConf;
  moveDefaultRoute(rec: SandboxRecord, a: AttachmentRecord, summary: SetupResult, signal: AbortSignal): Promise<void>;
}

/** Where a delegate's config is said to come from in error messages. */
const GIVEN_CONFIG = 'the network config of the request';

function pending(a: AttachmentRecord): boolean {
  return a.phase === 'adding' || a.phase === 'removing';
}

/** The lowest netN no attachment of the pod holds (one being removed still holds its name). */
function nextFreeIfName(rec: SandboxRecord): string {
  const held = new Set(rec.attachments.map((a) => a.ifName));
  for (let n = 1; ; n++) if (!held.has(`net${n}`)) return `net${n}`;
}

/** Same network, same requests: a retry of an attach that succeeded. */
function sameAttachment(held: AttachmentRecord, wanted: AttachmentRecord): boolean {
  const { ifName: _a, phase: _b, error: _c, ...h } = held;
  const { ifName: _d, ...w } = wanted;
  return JSON.stringify(h) === JSON.stringify(w);
}

export class Hotplug implements HotplugEngine {
  constructor(private readonly h: HotplugHost) {}

  // ---- attach ---------------------------------------------------------------------------------

  attach(id: string, selection: AttachSelection, signal: AbortSignal): Promise<AttachOutcome> {
    return this.counted('attach', id, async () => {
      await this.h.recovered();
      // Everything resolved before the lock and before anything runs; the interface is chosen
      // under the lock, against the record as it is then.
      const wanted = await this.resolve(this.readySandbox(id), selection);
      return this.h.locked(id, async () => {
        const rec = this.readySandbox(id);
        const ifName = wanted.requested ?? nextFreeIfName(rec);
        const held = rec.attachments.find((a) => a.ifName === ifName);
        if (held) {
          if ((held.phase ?? 'ready') === 'ready' && sameAttachment(held, wanted.record)) {
            const result = rec.results.find((r) => r.ifName === ifName)?.result as Result | undefined;
            if (result) return { status: this.entry(rec, ifName), result };
          }
          const what = held.phase === 'removing' ? ', being removed' : held.phase === 'adding' ? ', being added' : '';
          throw alreadyExists(`interface ${ifName} of sandbox ${id} is taken (network "${held.ref ?? held.network}"${what})`);
        }
        return this.add(rec, { ...wanted.record, ifName, phase: 'adding' }, signal);
      });
    });
  }

  /** The selection as an attachment record (its interface unset unless requested): NAD, config, capabilities all checked. */
  private async resolve(rec: SandboxRecord, sel: AttachSelection): Promise<{ record: AttachmentRecord; requested: string | undefined }> {
    const where = `network to attach to sandbox ${rec.id}`;
    const podNamespace = rec.metadata.namespace;
    let selection;
    let records: AttachmentRecord[];
    if (sel.config !== undefined) {
      // The request's own config is read as a NAD's spec.config would be: one reading for both.
      const given: NAD = { name: 'unnamed', namespace: podNamespace, config: sel.config.toString('utf8'), file: GIVEN_CONFIG };
      let list: NetworkConfigList | undefined;
      try {
        list = nadConfList(given);
      } catch (err) {
        throw invalidArgument(`${where}: ${GIVEN_CONFIG} is not a valid CNI config: ${(err as Error).message}`);
      }
      if (!list) throw invalidArgument(`${where}: ${GIVEN_CONFIG} is empty`);
      selection = parseNetworkElement(sel.element, podNamespace, where, list.name);
      const nad: NAD = { ...given, name: list.name };
      records = resolveAttachments([selection], new Map([[`${podNamespace}/${list.name}`, nad]]), () => undefined, []);
    } else {
      selection = parseNetworkElement(sel.element, podNamespace, where);
      const { nads } = await this.h.nads.load();
      records = resolveAttachments([selection], nads, (name) => this.h.networks.findNetwork(name), []);
    }
    return { record: records[0], requested: selection.interface };
  }

  /** ADD of a new attachment: recorded `adding` first; any failure after that is rolled back. */
  private async add(rec: SandboxRecord, a: AttachmentRecord, signal: AbortSignal): Promise<AttachOutcome> {
    rec.attachments.push(a);
    try {
      await this.h.store.put(rec);
    } catch (err) {
      rec.attachments.splice(rec.attachments.indexOf(a), 1);
      throw toEngineError(err, 'failed to record the attachment');
    }
    try {
      const timeout = withTimeout(signal, a.timeoutMs ?? this.h.cfg.cni.pluginTimeoutMs);
      const result = toCurrent(await this.h.networks.cni.addNetworkList(this.h.list(rec, a), this.h.runtimeConf(rec, a, rec.netnsPath), { signal: timeout }));
      rec.results.push({ network: a.network, ifName: a.ifName, result });
      if (a.defaultRoute) await this.h.moveDefaultRoute(rec, a, summarize([{ network: a.network, ifName: a.ifName, result }]), signal);
      a.phase = 'ready';
      await this.h.store.put(rec);
      return { status: this.entry(rec, a.ifName), result };
    } catch (err) {
      const e = toEngineError(err, `failed to attach network "${a.ref ?? a.network}" as ${a.ifName} to sandbox ${rec.id}`);
      this.h.log.warn({ sandbox: rec.id, ifName: a.ifName, network: a.network, err: e.message }, 'attach failed; rolling back');
      // Rolled back on its own timeout: the client's may be what ran out.
      await this.remove(rec, a, AbortSignal.timeout(this.h.cfg.cleanupTimeoutMs)).catch((delErr: Error) => {
        this.h.log.error({ sandbox: rec.id, ifName: a.ifName, err: delErr.message }, 'rollback of a failed attach did not finish; the attachment stays removing and is retried');
      });
      throw e;
    }
  }

  // ---- detach ---------------------------------------------------------------------------------

  detach(id: string, ifName: string, signal: AbortSignal): Promise<void> {
    return this.counted('detach', id, async () => {
      await this.h.recovered();
      try {
        validateIfName(ifName);
      } catch (err) {
        throw toEngineError(err);
      }
      this.readySandbox(id);
      await this.h.locked(id, async () => {
        const rec = this.readySandbox(id);
        if (ifName === rec.clusterIfName) throw failedPrecondition(`interface ${ifName} is the cluster network of sandbox ${id}: it cannot be detached (stop the sandbox instead)`);
        const a = rec.attachments.find((x) => x.ifName === ifName);
        if (!a) throw notFound(`sandbox ${id} has no interface ${quote(ifName)}`);
        if (a.ifName === 'lo') throw failedPrecondition(`interface lo of sandbox ${id} cannot be detached`);
        try {
          await this.remove(rec, a, withTimeout(signal, a.timeoutMs ?? this.h.cfg.cni.pluginTimeoutMs));
        } catch (err) {
          throw toEngineError(err, `failed to detach ${ifName} from sandbox ${id}; it stays removing and is retried by the next detach, Stop or GC`);
        }
        // Any earlier removal that failed gets another go while we hold the lock.
        await this.retryLocked(rec);
      });
    });
  }

  /**
   * DEL of one attachment from the config it was recorded with: `removing` on disk first, its
   * interface out of network-status; forgotten once DEL succeeds, else kept with the error.
   */
  private async remove(rec: SandboxRecord, a: AttachmentRecord, signal: AbortSignal): Promise<void> {
    a.phase = 'removing';
    rec.results = rec.results.filter((r) => r.ifName !== a.ifName);
    await this.h.store.put(rec);
    try {
      await delAttachment(this.h.networks.cni, { list: this.h.list(rec, a), ifName: a.ifName }, this.h.runtimeConf(rec, a, rec.netnsPath), signal);
    } catch (err) {
      a.error = (err as Error).message;
      await this.h.store.put(rec).catch(() => undefined);
      throw err;
    }
    rec.attachments.splice(rec.attachments.indexOf(a), 1);
    await this.h.store.put(rec);
  }

  // ---- retries and recovery -------------------------------------------------------------------

  /** Whether the pod has an attach or detach to finish. */
  hasPending(rec: Readonly<SandboxRecord>): boolean {
    return rec.attachments.some(pending);
  }

  /** CNI GC's turn: a ready pod's failed removals are tried again, under its lock. */
  async retry(id: string): Promise<void> {
    await this.h.locked(id, async () => {
      const rec = this.h.store.get(id);
      if (rec?.phase === 'ready') await this.retryLocked(rec);
    });
  }

  private async retryLocked(rec: SandboxRecord): Promise<void> {
    for (const a of rec.attachments.filter(pending).reverse()) {
      await this.remove(rec, a, AbortSignal.timeout(this.h.cfg.cleanupTimeoutMs)).then(
        () => this.h.log.info({ sandbox: rec.id, ifName: a.ifName }, 'retried the removal of an attachment: done'),
        (err: Error) => this.h.log.warn({ sandbox: rec.id, ifName: a.ifName, err: err.message }, 'retried the removal of an attachment: still failing; will retry'),
      );
    }
  }

  /**
   * After a restart: an attach that was `adding` is undone (its client never got an answer) and
   * a `removing` one finished, both by DEL. The pod stays ready whatever happens; a DEL that
   * fails keeps the attachment `removing` for the next detach, Stop or GC.
   */
  async recover(rec: SandboxRecord): Promise<void> {
    await this.retryLocked(rec);
  }

  /** Once the pod's teardown succeeded, removals still pending are done too. */
  static forgetRemoved(rec: SandboxRecord): void {
    rec.attachments = rec.attachments.filter((a) => !pending(a));
  }

  // ---- list -----------------------------------------------------------------------------------

  listNetworks(id: string): NetworkStatusEntry[] {
    const rec = this.h.store.get(id);
    if (!rec || rec.phase === 'creating') throw notFound(`sandbox ${quote(id)} not found`);
    return networkStatus(rec);
  }

  private entry(rec: SandboxRecord, ifName: string): NetworkStatusEntry {
    const e = networkStatus(rec).find((x) => x.interface === ifName);
    if (!e) throw new Error(`no network-status entry for ${ifName}`);
    return e;
  }

  /** The sandbox, which must be ready for a hot-plug. */
  private readySandbox(id: string): SandboxRecord {
    const rec = this.h.store.get(id);
    if (!rec || rec.phase === 'creating') throw notFound(`sandbox ${quote(id)} not found`);
    if (rec.phase !== 'ready') throw failedPrecondition(`sandbox ${id} is ${rec.phase}, not ready: networks are attached and detached on ready sandboxes only`);
    if (rec.hostNetwork) throw failedPrecondition(`sandbox ${id} uses the node's network namespace: it has no networks of its own to attach to`);
    return rec;
  }

  private async counted<T>(op: 'attach' | 'detach', id: string, fn: () => Promise<T>): Promise<T> {
    const door: Door = this.h.store.get(id)?.door ?? 'cri';
    try {
      const out = await fn();
      this.observe(op, door, 'ok');
      return out;
    } catch (err) {
      const e = toEngineError(err);
      this.observe(op, door, e.kind);
      throw e;
    }
  }

  private observe(op: 'attach' | 'detach', door: Door, outcome: string): void {
    try {
      this.h.observer.hotplug?.(op, door, outcome);
    } catch (err) {
      this.h.log.error({ op, err: (err as Error).message }, 'hot-plug observer failed');
    }
  }
}

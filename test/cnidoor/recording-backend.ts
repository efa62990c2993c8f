// A CNIDoorBackend that records what the door handed it (protocol tests only: it stands in for
// the engine, which has its own tests) and answers what each test tells it to.
import type { AttachmentCall, CNIDoorBackend, DelegateCall, GCCall, StatusCall } from '../../src/cnidoor/backend.js';
import type { Result } from '../../src/cni/result.js';

export type Recorded =
  | { method: 'add' | 'del' | 'check'; call: AttachmentCall; signal: AbortSignal }
  | { method: 'gc'; call: GCCall; signal: AbortSignal }
  | { method: 'status'; call: StatusCall; signal: AbortSignal }
  | { method: 'delegateAdd' | 'delegateDel'; call: DelegateCall; signal: AbortSignal };

type Method = Recorded['method'];

/** A 1.0.0 result for an ADD of ifName with address. */
export function resultFor(address = '10.200.0.5/24', ifName = 'eth0'): Result {
  return {
    cniVersion: '1.0.0',
    interfaces: [{ name: ifName, mac: '0a:58:0a:c8:00:05', sandbox: '/var/run/netns/x' }],
    ips: [{ interface: 0, address, gateway: address.replace(/\.\d+\//, '.1/').split('/')[0] }],
    routes: [{ dst: '0.0.0.0/0' }],
    dns: {},
  };
}

export class RecordingBackend implements CNIDoorBackend {
  readonly calls: Recorded[] = [];
  isReady = true;
  /** How many times the door asked ready() (each /readyz asks once). */
  readyCalls = 0;
  /** Per method: what to do instead of answering at once (throw, wait on the signal...). */
  readonly hooks = new Map<Method, (r: Recorded) => Promise<unknown>>();

  ready(): boolean {
    this.readyCalls++;
    return this.isReady;
  }

  private async run<T>(r: Recorded, dflt: T): Promise<T> {
    this.calls.push(r);
    const hook = this.hooks.get(r.method);
    return hook ? ((await hook(r)) as T) : dflt;
  }

  add(call: AttachmentCall, signal: AbortSignal): Promise<Result> {
    return this.run({ method: 'add', call, signal }, resultFor('10.200.0.5/24', call.ifName));
  }
  del(call: AttachmentCall, signal: AbortSignal): Promise<void> {
    return this.run({ method: 'del', call, signal }, undefined);
  }
  check(call: AttachmentCall, signal: AbortSignal): Promise<void> {
    return this.run({ method: 'check', call, signal }, undefined);
  }
  gc(call: GCCall, signal: AbortSignal): Promise<void> {
    return this.run({ method: 'gc', call, signal }, undefined);
  }
  status(call: StatusCall, signal: AbortSignal): Promise<void> {
    return this.run({ method: 'status', call, signal }, undefined);
  }
  delegateAdd(call: DelegateCall, signal: AbortSignal): Promise<Result> {
    return this.run({ method: 'delegateAdd', call, signal }, resultFor('10.201.0.7/24', call.ifName));
  }
  delegateDel(call: DelegateCall, signal: AbortSignal): Promise<void> {
    return this.run({ method: 'delegateDel', call, signal }, undefined);
  }
}

import { status, type ServerWritableStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { ContainerEventType, type ContainerEventResponse, type GetEventsRequest, type PodSandboxStatus } from '../gen/runtime/v1/api.js';
import type { SandboxRecord } from '../engine/store.js';
import type { SandboxStep } from '../engine/types.js';
import { sandboxStatus } from './pod-sandbox-status.js';
import { systemClock, type Clock } from './sandbox-service.js';

/** The container event the CRI reports for each step of a sandbox's life, as containerd does. */
const EVENT_OF_STEP: Readonly<Record<SandboxStep, ContainerEventType>> = {
  created: ContainerEventType.CONTAINER_CREATED_EVENT,
  ready: ContainerEventType.CONTAINER_STARTED_EVENT,
  stopped: ContainerEventType.CONTAINER_STOPPED_EVENT,
  removed: ContainerEventType.CONTAINER_DELETED_EVENT,
};

/** Where each lifecycle step of a sandbox is reported. */
export interface SandboxEventSink {
  /** Whether anyone listens: the caller builds the status only then. */
  readonly listening: boolean;
  publish(type: ContainerEventType, sandbox: PodSandboxStatus): void;
}

interface Subscriber {
  send(ev: ContainerEventResponse): void;
  close(): void;
}

/**
 * Fans sandbox lifecycle events out to every open GetContainerEvents stream, as containerd does for
 * its sandboxes: container_id is the sandbox id and pod_sandbox_status is filled. Nothing is kept
 * for a client that is not connected; one that goes away is simply dropped.
 */
export class SandboxEvents implements SandboxEventSink {
  private readonly subscribers = new Set<Subscriber>();
  private closed = false;

  constructor(private readonly clock: Clock = systemClock) {}

  get listening(): boolean {
    return this.subscribers.size > 0;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** The engine's observer: a CRI door sandbox's step becomes an event (the CNI door's pods are not the kubelet's). */
  onSandboxStep(step: SandboxStep, rec: Readonly<SandboxRecord>): void {
    if (rec.door !== 'cri' || !this.listening) return;
    this.publish(EVENT_OF_STEP[step], sandboxStatus(rec));
  }

  publish(type: ContainerEventType, sandbox: PodSandboxStatus): void {
    const ev: ContainerEventResponse = { containerId: sandbox.id, containerEventType: type, createdAt: this.clock.nowNs(), podSandboxStatus: sandbox, containersStatuses: [] };
    for (const s of [...this.subscribers]) s.send(ev);
  }

  subscribe(s: Subscriber): () => void {
    if (this.closed) {
      // Shutting down: a stream opened now is ended at once, after the caller is set up.
      setImmediate(() => s.close());
      return () => undefined;
    }
    this.subscribers.add(s);
    return () => this.subscribers.delete(s);
  }

  /** Ends every stream (daemon shutdown: the server waits for open calls to finish). */
  close(): void {
    this.closed = true;
    for (const s of [...this.subscribers]) s.close();
    this.subscribers.clear();
  }
}

/** Events queued for one client that does not read; past it, its stream is ended. */
export const MAX_PENDING_EVENTS = 1024;

/** The GetContainerEvents handler: a stream that stays open until the client leaves or we stop. */
export function serveContainerEvents(events: SandboxEvents, log: Logger) {
  return (call: ServerWritableStream<GetEventsRequest, ContainerEventResponse>): void => {
    let done = false;
    const finish = (why: string): void => {
      if (done) return;
      done = true;
      unsubscribe();
      log.info({ rpc: 'GetContainerEvents', outcome: why, subscribers: events.subscriberCount }, 'GetContainerEvents');
    };
    const unsubscribe = events.subscribe({
      send(ev) {
        if (done) return;
        if (call.writableLength >= MAX_PENDING_EVENTS) {
          finish('RESOURCE_EXHAUSTED');
          call.emit('error', { code: status.RESOURCE_EXHAUSTED, details: `GetContainerEvents: the client read none of the last ${MAX_PENDING_EVENTS} events; reconnect and list the sandboxes again` });
          return;
        }
        call.write(ev);
      },
      close() {
        finish('OK');
        call.end();
      },
    });
    call.on('cancelled', () => finish('CANCELLED'));
    call.on('close', () => finish('OK'));
    call.on('error', () => finish('ERROR'));
    log.info({ rpc: 'GetContainerEvents', outcome: 'OPEN', subscribers: events.subscriberCount }, 'GetContainerEvents');
  };
}

/** Serializes work per key: RPCs on one sandbox run one at a time, different sandboxes in parallel. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** Bounds how much network work runs at once. */
export class Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiters.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiters.shift()?.();
    }
  }
}

/**
 * Many shared holders or one exclusive: ADD/DEL run shared, CNI GC exclusive, as the spec
 * requires ("no add or delete in progress before gc; wait for gc before new add or delete").
 * Waiting exclusives block new shared holders so GC cannot starve.
 */
export class SharedExclusiveLock {
  private shared = 0;
  private exclusiveHeld = false;
  private readonly queue: Array<{ exclusive: boolean; go: () => void }> = [];

  private pump(): void {
    while (this.queue.length > 0) {
      const next = this.queue[0];
      if (next.exclusive) {
        if (this.shared > 0 || this.exclusiveHeld) return;
        this.exclusiveHeld = true;
      } else {
        if (this.exclusiveHeld) return;
        this.shared++;
      }
      this.queue.shift();
      next.go();
    }
  }

  private acquire(exclusive: boolean): Promise<void> {
    return new Promise((go) => {
      this.queue.push({ exclusive, go });
      this.pump();
    });
  }

  async runShared<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(false);
    try {
      return await fn();
    } finally {
      this.shared--;
      this.pump();
    }
  }

  async runExclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(true);
    try {
      return await fn();
    } finally {
      this.exclusiveHeld = false;
      this.pump();
    }
  }
}

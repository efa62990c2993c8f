/**
 * Waits for every promise to settle, then throws the first rejection or gives every value, in
 * order. Unlike Promise.all, nothing is still running when it throws: a cleanup that follows
 * never races a write in flight.
 */
export async function settleAll<T>(ps: ReadonlyArray<Promise<T>>): Promise<T[]> {
  const settled = await Promise.allSettled(ps);
  const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((x) => (x as PromiseFulfilledResult<T>).value);
}

/**
 * The same promise, marked handled: its owner awaits it later, and a rejection before then must
 * not count as unhandled (which ends the process).
 */
export function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

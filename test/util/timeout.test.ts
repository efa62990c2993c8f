// withTimeout: the timer fires even after a garbage collection, which AbortSignal.any over an
// AbortSignal.timeout does not guarantee in Node (nodejs/node#57736).
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { withTimeout } from '../../src/util/timeout.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const aborted = (s: AbortSignal): Promise<unknown> => new Promise((resolve) => s.addEventListener('abort', () => resolve(s.reason), { once: true }));

describe('withTimeout', () => {
  it('aborts with a TimeoutError after ms, a garbage collection in between', async () => {
    const s = withTimeout(new AbortController().signal, 300);
    const reason = aborted(s);
    gc();
    const r = await reason;
    expect(r).toBeInstanceOf(Error);
    expect((r as Error).name).toBe('TimeoutError');
  });

  it('aborts with the parent signal\'s reason when that comes first', async () => {
    const parent = new AbortController();
    const s = withTimeout(parent.signal, 60_000);
    const reason = aborted(s);
    parent.abort(new Error('the client canceled the request'));
    expect(((await reason) as Error).message).toBe('the client canceled the request');
  });
});

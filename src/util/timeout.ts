/**
 * `signal`, or `ms` passing (a TimeoutError reason, as AbortSignal.timeout gives), whichever comes
 * first. Not AbortSignal.any([signal, AbortSignal.timeout(ms)]): Node holds a timeout signal that
 * is only a composite's source weakly, so after a garbage collection its timer never fires
 * (nodejs/node#57736) and a hung plugin would outlive plugin_timeout. Here the timer holds its
 * controller; it does not keep the process alive.
 */
export function withTimeout(signal: AbortSignal, ms: number): AbortSignal {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new DOMException(`The operation timed out after ${ms} ms`, 'TimeoutError')), ms);
  timer.unref();
  const combined = AbortSignal.any([signal, ac.signal]);
  combined.addEventListener('abort', () => clearTimeout(timer), { once: true });
  return combined;
}

/**
 * Kubernetes resource quantities ("10M", "1Gi", "500k", "1e6"), as the kubelet parses the
 * kubernetes.io/{ingress,egress}-bandwidth annotations. Returns the value rounded up to an integer,
 * or undefined when it is not a quantity or not a finite number.
 */
const QUANTITY_RE = /^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

export function parseQuantity(text: string): number | undefined {
  const m = QUANTITY_RE.exec(text.trim());
  if (!m) return undefined;
  const num = Number(m[1]);
  const suffix = m[2] ?? '';
  const mult = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : SUFFIX[suffix];
  if (mult === undefined || !Number.isFinite(num)) return undefined;
  // "0e400" is 0 × Infinity: NaN, which every range check lets through.
  const value = Math.ceil(num * mult);
  return Number.isFinite(value) ? value : undefined;
}

/** The kubelet's bounds for pod bandwidth: 1 kbit/s to 1 Pbit/s. */
export const MIN_BANDWIDTH = 1e3;
export const MAX_BANDWIDTH = 1e15;

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export class DurationError extends Error {
  override name = 'DurationError';
}

/** "30s", "10m", "500ms", "1h": Go-style durations as containerd's config uses them; milliseconds. */
export function parseDuration(v: string, key: string): number {
  const m = DURATION_RE.exec(v.trim());
  if (!m) throw new DurationError(`${key}: invalid duration "${v}" (use e.g. "500ms", "30s", "10m")`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2]]);
}

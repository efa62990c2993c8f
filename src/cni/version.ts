/** CNI spec versions this library speaks, oldest first. */
export const SUPPORTED_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type SpecVersion = (typeof SUPPORTED_VERSIONS)[number];

export const CURRENT_VERSION: SpecVersion = '1.1.0';

const VERSION_RE = /^(\d+)\.(\d+)\.(\d+)$/;

export function isSupportedVersion(v: string): v is SpecVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Parses "major.minor.patch"; anything else is not a CNI version. */
export function parseVersion(v: string): [number, number, number] {
  const m = VERSION_RE.exec(v);
  if (!m) throw new Error(`invalid CNI version "${v}"`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Negative when a < b, 0 when equal, positive when a > b. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    const d = pa[i]! - pb[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

export function versionAtLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

/**
 * The `cniVersions` array of a 1.1.0 config lets one file serve runtimes of different ages:
 * we take the highest entry we understand, as libcni does.
 */
export function highestSupported(candidates: readonly string[]): SpecVersion | undefined {
  let best: SpecVersion | undefined;
  for (const c of candidates) {
    if (!isSupportedVersion(c)) continue;
    if (best === undefined || compareVersions(c, best) > 0) best = c;
  }
  return best;
}

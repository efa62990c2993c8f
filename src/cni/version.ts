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
    const d = pa[i] - pb[i];
    if (d !== 0) return d;
  }
  return 0;
}

export function versionAtLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

/**
 * A version as libcni's ParseVersion reads one: one to three dot-separated integers, so "1",
 * "1.0" and "1.0.0" are the same version. Config files may say any of them.
 */
export function parseLooseVersion(v: string): [number, number, number] {
  const parts = v.split('.');
  if (v === '' || parts.length > 3 || !parts.every((p) => /^[+-]?\d+$/.test(p))) throw new Error(`invalid CNI version "${v}"`);
  const [major, minor = 0, micro = 0] = parts.map(Number);
  return [major, minor, micro];
}

function compareLoose(a: string, b: string): number {
  const pa = parseLooseVersion(a);
  const pb = parseLooseVersion(b);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
}

export function looseGreaterThan(a: string, b: string): boolean {
  return compareLoose(a, b) > 0;
}

/**
 * The spec version we read a network in, from the version libcni selected for it: none at all is
 * 0.1.0 (libcni's ConfigDecoder), one newer than ours is ours, one between two we know is the
 * lower of them ("1.0" is 1.0.0). Throws for a string that is no version.
 */
export function specVersionOf(declared: string): SpecVersion {
  if (declared === '') return '0.1.0';
  let best: SpecVersion = SUPPORTED_VERSIONS[0];
  for (const v of SUPPORTED_VERSIONS) if (compareLoose(v, declared) <= 0) best = v;
  return best;
}

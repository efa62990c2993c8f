import { isIP } from 'node:net';

/** 4 or 6 for an IP literal (or IP/prefix when cidr), else undefined. Zones ("%eth0") are refused. */
export function ipFamily(text: string, cidr: boolean): 4 | 6 | undefined {
  const slash = text.indexOf('/');
  const addr = cidr && slash >= 0 ? text.slice(0, slash) : text;
  if (addr.includes('%')) return undefined;
  const family = isIP(addr);
  if (family !== 4 && family !== 6) return undefined;
  if (cidr && slash >= 0) {
    const prefix = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128)) return undefined;
  }
  return family;
}

import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { CNIConfig } from '../cni/cni.js';
import { loadNetworkConf } from '../cni/config.js';
import { isObject, parseJSON } from '../util/json.js';
import type { RuntimeConf } from '../cni/runtime-conf.js';
import { defaultConfig } from '../cri/config.js';
import { DEFAULT_IFNAME } from '../engine/types.js';

/** cnitool's container id for a netns: the same one Go's cnitool derives, so either can DEL. */
export function cnitoolContainerID(netnsPath: string): string {
  return `cnitool-${createHash('sha512').update(resolve(netnsPath)).digest('hex').slice(0, 20)}`;
}

/** A command line that cannot work as written (exit status 2, with the usage). */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface CnitoolEnv {
  NETCONFPATH?: string;
  CNI_PATH?: string;
  CNI_IFNAME?: string;
  CNI_ARGS?: string;
  CAP_ARGS?: string;
  CNI_CONTAINERID?: string;
}

/**
 * cnitool's parseArgs: "K=V;K=V", where every pair has exactly one "=", a key and a value, so an
 * empty pair ("A=1;;B=2", a trailing ";"), an empty key or value, or a second "=" is an error.
 */
export function parseCniArgs(s: string | undefined): Array<[string, string]> {
  if (!s) return [];
  return s.split(';').map((pair) => {
    const kv = pair.split('=');
    if (kv.length !== 2 || kv[0] === '' || kv[1] === '') throw new Error(`invalid CNI_ARGS pair ${JSON.stringify(pair)}`);
    return [kv[0], kv[1]];
  });
}

function parseCapArgs(s: string | undefined): Record<string, unknown> {
  if (!s) return {};
  const v = parseJSON(s);
  if (!isObject(v)) throw new Error('CAP_ARGS must be a JSON object');
  return v;
}

/**
 * `podnet add|del|check|gc|status <network> [<netns>]`: cnitool's interface and environment, on
 * our library. Returns the text to print (the result JSON for add); what plugins write to stderr
 * goes to `stderr` as they write it, as cnitool passes it on.
 */
export async function cnitool(verb: string, args: string[], env: CnitoolEnv, cacheDir: string, stderr: (text: string) => void = () => undefined): Promise<string> {
  const [network, netns] = args;
  const needsNetns = verb !== 'gc' && verb !== 'status';
  if (!network || (needsNetns && !netns)) throw new UsageError(`usage: podnet ${verb} <network>${needsNetns ? ' <netns>' : ''}`);
  const confDir = env.NETCONFPATH || defaultConfig().cni.confDir;
  const list = await loadNetworkConf(confDir, network);
  // No default plugin path: cnitool with CNI_PATH unset finds no plugin ("no paths provided").
  const cni = new CNIConfig({ path: (env.CNI_PATH ?? '').split(':').filter(Boolean), cacheDir, onStderr: (ev) => stderr(ev.stderr) });
  if (verb === 'gc') {
    await cni.gcNetworkList(list, { validAttachments: [] });
    return '';
  }
  if (verb === 'status') {
    await cni.getStatusNetworkList(list);
    return '';
  }
  const nsPath = resolve(netns);
  const rt: RuntimeConf = {
    containerID: env.CNI_CONTAINERID || cnitoolContainerID(nsPath),
    netNS: nsPath,
    ifName: env.CNI_IFNAME || DEFAULT_IFNAME,
    args: parseCniArgs(env.CNI_ARGS),
    capabilityArgs: parseCapArgs(env.CAP_ARGS),
  };
  switch (verb) {
    case 'add':
      return `${JSON.stringify(await cni.addNetworkList(list, rt), null, 4)}\n`;
    case 'del':
      await cni.delNetworkList(list, rt);
      return '';
    case 'check':
      await cni.checkNetworkList(list, rt);
      return '';
    default:
      throw new UsageError(`unknown command "${verb}"`);
  }
}

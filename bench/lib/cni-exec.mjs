// Running one CNI plugin by hand, the way a CNI runtime does (CNI spec section 3).
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CNI_BIN } from './config.mjs';
import { BASE_ENV, run } from './proc.mjs';

/** The request config a CNI runtime sends one plugin of a list. */
export function pluginStdin(list, plugin, prevResult, capabilityArgs) {
  const stdin = { cniVersion: list.cniVersion, name: list.name };
  for (const [k, v] of Object.entries(plugin)) {
    if (k === 'cniVersion' || k === 'name' || k === 'capabilities' || k === 'prevResult' || k.startsWith('cni.dev/')) continue;
    stdin[k] = v;
  }
  if (prevResult) stdin.prevResult = prevResult;
  const runtimeConfig = {};
  for (const cap of Object.keys(plugin.capabilities ?? {})) if (capabilityArgs?.[cap] !== undefined) runtimeConfig[cap] = capabilityArgs[cap];
  if (Object.keys(runtimeConfig).length > 0) stdin.runtimeConfig = runtimeConfig;
  return stdin;
}

export const versionAtLeast040 = (v) => !['0.1.0', '0.2.0', '0.3.0', '0.3.1'].includes(v);

/** One plugin execution for pod {id, ns, nsPath, cniArgs, capabilityArgs}; returns {ms, result}. */
export async function execPlugin(verb, list, plugin, prevResult, pod, ifName) {
  const env = {
    ...BASE_ENV,
    CNI_COMMAND: verb,
    CNI_CONTAINERID: pod.id,
    CNI_NETNS: pod.nsPath,
    CNI_IFNAME: ifName,
    CNI_PATH: CNI_BIN,
    CNI_ARGS: pod.cniArgs,
  };
  const t0 = performance.now();
  const r = await run(join(CNI_BIN, plugin.type), [], { input: JSON.stringify(pluginStdin(list, plugin, prevResult, pod.capabilityArgs)), env });
  const out = r.stdout.trim();
  const result = out ? JSON.parse(out) : undefined;
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`${plugin.type} ${verb} (${pod.ns}): exit ${r.code}: ${out || r.stderr.trim()}`);
  return { ms, result };
}

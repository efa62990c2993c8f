// `podnet explain`: what RunPodSandbox would do with a pod config (the file `crictl runp` takes),
// resolved by the daemon's own code (the CRI door's validation and translation, Engine.plan, the
// CNI library's stdin and environment) with nothing created: no record, no namespace, no ADD.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { parse as parseYaml } from 'yaml';
import { CNIConfig } from '../cni/cni.js';
import { errorMessage } from '../cni/errors.js';
import { RawExec } from '../cni/exec.js';
import { LOOPBACK_IFNAME } from '../cni/networks.js';
import { defaultConfig, loadConfigFile, type DaemonConfig } from '../cri/config.js';
import { toWireError } from '../cri/errors.js';
import { podSetupRequest } from '../cri/run-pod-sandbox.js';
import { lostKeyError } from '../cri/server.js';
import { isLostKey, type LostKey } from '../cri/wire-keys.js';
import { NADStore } from '../engine/attachments.js';
import { Engine } from '../engine/engine.js';
import { NetworkManager } from '../engine/network-manager.js';
import { NetnsLedger, SandboxStore } from '../engine/store.js';
import { PodSandboxConfig, RunPodSandboxRequest } from '../gen/runtime/v1/api.js';
import { NETNS_PREFIX, NetnsManager } from '../netns/netns.js';
import { InlineSpawner } from '../spawner/spawner.js';

/** The sandbox id explain runs with: a real one is 64 random hex digits, made by RunPodSandbox. */
export const PLACEHOLDER_SANDBOX_ID = '0'.repeat(64);
/** The namespace name explain shows: the daemon makes `cni-<random uuid>` under its netns dir. */
export const PLACEHOLDER_NETNS = `${NETNS_PREFIX}00000000-0000-0000-0000-000000000000`;

export interface ExplainOptions {
  podFile: string;
  /** RunPodSandboxRequest.runtime_handler (crictl runp --runtime); '' is the default handler. */
  runtimeHandler: string;
  configFile?: string;
  /** Also run VERSION of each plugin (never ADD). */
  checkPlugins: boolean;
}

export interface PluginPlan {
  type: string;
  /** Where the plugin was found in the plugin dirs; null when it is in none (the ADD would fail). */
  path: string | null;
  /** Capabilities the plugin declares, and the runtimeConfig it gets from them. */
  capabilities: string[];
  /** The plugin before it, whose ADD result this one gets as prevResult (not known before it runs). */
  prevResultFrom: string | null;
  env: Record<string, string>;
  /** The stdin JSON, parsed; prevResult, when it gets one, is left out. */
  stdin: Record<string, unknown>;
  /** VERSION's answer (--check-plugins). */
  supportedVersions?: string[];
  /** What would make the ADD fail (a missing plugin, a VERSION that fails). */
  problems: string[];
  notes: string[];
}

export interface NetworkPlan {
  network: string;
  ifName: string;
  /** The networks annotation's or default-network annotation's namespace/name. */
  ref?: string;
  kind: 'loopback' | 'cluster' | 'attachment';
  cniVersion: string;
  cniArgs: Array<[string, string]>;
  capabilityArgs: Record<string, unknown>;
  plugins: PluginPlan[];
}

export interface ExplainPlan {
  ok: true;
  pod: { namespace: string; name: string; uid: string; attempt?: number };
  runtimeHandler: { requested: string; name: string; confDir: string; networks: string };
  sandboxId: string;
  sandboxIdNote: string;
  hostNetwork: boolean;
  netns: string;
  netnsNote: string;
  networks: NetworkPlan[];
  problems: string[];
}

export interface ExplainRefusal {
  ok: false;
  /** gRPC status name, as crictl prints it (INVALID_ARGUMENT, FAILED_PRECONDITION…). */
  code: string;
  grpcCode: number;
  message: string;
}

export type ExplainReport = ExplainPlan | ExplainRefusal;

/** PodSandboxConfig's map fields (every segment one word: the same in snake_case and camelCase). */
const MAP_FIELDS = [['labels'], ['annotations'], ['linux', 'sysctls'], ['linux', 'overhead', 'unified'], ['linux', 'resources', 'unified']];

/**
 * A map key crictl would send but the decoded message cannot hold: podnetd refuses such a
 * request before decoding it into the config (server.ts), and so does explain, in its words.
 */
function lostKeyOf(doc: Record<string, unknown>): LostKey | undefined {
  for (const path of MAP_FIELDS) {
    let v: unknown = doc;
    for (const seg of path) v = typeof v === 'object' && v !== null && Object.hasOwn(v, seg) ? (v as Record<string, unknown>)[seg] : undefined;
    if (typeof v !== 'object' || v === null) continue;
    const key = Object.keys(v).find(isLostKey);
    if (key !== undefined) return { field: `config.${path.join('.')}`, key };
  }
  return undefined;
}

/** The pod config as crictl reads it: JSON or YAML, PodSandboxConfig in crictl's (snake_case) or protobuf JSON (camelCase) field names. */
export async function readPodConfig(file: string): Promise<{ config: PodSandboxConfig; lost?: LostKey }> {
  const text = await readFile(file, 'utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new Error(`${file}: neither JSON nor YAML: ${errorMessage(err)}`);
    }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`${file}: a pod config must be an object (a PodSandboxConfig)`);
  const lost = lostKeyOf(doc as Record<string, unknown>);
  // What the daemon decodes from the wire: the same message, encoded and decoded.
  return { config: PodSandboxConfig.decode(PodSandboxConfig.encode(PodSandboxConfig.fromJSON(doc)).finish()), ...(lost ? { lost } : {}) };
}

/** The daemon's netns manager, but the path it hands out is the placeholder (a real one is random). */
class PlaceholderNetns extends NetnsManager {
  override newPath(): string {
    return join(this.dir, PLACEHOLDER_NETNS);
  }
}

function refusal(err: unknown): ExplainRefusal {
  const e = toWireError(err);
  return { ok: false, code: status[e.code] ?? String(e.code), grpcCode: e.code, message: e.message };
}

/** Runs the daemon's resolution for one pod; a refusal is the status RunPodSandbox would return. */
export async function explain(opts: ExplainOptions): Promise<ExplainReport> {
  const cfg: DaemonConfig = opts.configFile ? await loadConfigFile(opts.configFile) : defaultConfig();
  const { config, lost } = await readPodConfig(opts.podFile);
  if (lost) return refusal(lostKeyError('RunPodSandbox', lost));
  const log = pino({ level: 'silent' });
  const cni = new CNIConfig({ path: cfg.cni.binDirs, cacheDir: cfg.cni.cacheDir, exec: new RawExec() });
  // The daemon's loading policy (broken files and lists with missing plugins skipped), without its watchers.
  const networks = new NetworkManager(cfg, cni, log);
  await networks.reloadAll();
  const engine = new Engine({
    cfg,
    store: new SandboxStore(cfg.stateDir),
    ledger: new NetnsLedger(cfg.stateDir),
    netns: new PlaceholderNetns(cfg.netnsDir),
    networks,
    nads: new NADStore(cfg.attachmentsDir),
    spawner: new InlineSpawner(),
    log,
  });
  const req = RunPodSandboxRequest.fromPartial({ config, runtimeHandler: opts.runtimeHandler });
  let plan;
  try {
    plan = await engine.plan(podSetupRequest(req, PLACEHOLDER_SANDBOX_ID, '0'));
  } catch (err) {
    return refusal(err);
  }
  const handler = opts.runtimeHandler;
  const own = handler !== '' && Object.hasOwn(cfg.runtimes, handler) ? cfg.runtimes[handler]?.cniConfDir : undefined;
  const rec = plan.record;
  const out: ExplainPlan = {
    ok: true,
    pod: { ...rec.metadata },
    runtimeHandler: { requested: handler, name: handler || cfg.defaultRuntimeHandler, confDir: own ?? cfg.cni.confDir, networks: networks.status(own ? handler : undefined).message },
    sandboxId: PLACEHOLDER_SANDBOX_ID,
    sandboxIdNote: 'placeholder: RunPodSandbox makes a random 64-hex-digit id (CNI_CONTAINERID, K8S_POD_INFRA_CONTAINER_ID)',
    hostNetwork: rec.hostNetwork,
    netns: rec.netnsPath,
    netnsNote: rec.hostNetwork ? 'the node\'s namespace: no CNI plugin runs' : `placeholder name: the daemon makes ${join(cfg.netnsDir, `${NETNS_PREFIX}<random uuid>`)}`,
    networks: [],
    problems: [],
  };
  for (const { attachment: a, list, runtimeConf: rt } of plan.attachments) {
    const net: NetworkPlan = {
      network: a.network,
      ifName: a.ifName,
      ...(a.ref ? { ref: a.ref } : {}),
      kind: a.ifName === LOOPBACK_IFNAME ? 'loopback' : a.secondary ? 'attachment' : 'cluster',
      cniVersion: list.cniVersion,
      cniArgs: (rt.args ?? []).map(([k, v]) => [k, v] as [string, string]),
      capabilityArgs: { ...(rt.capabilityArgs ?? {}) },
      plugins: [],
    };
    let prev: string | null = null;
    for (const p of list.plugins) {
      const problems: string[] = [];
      let path: string | null = null;
      try {
        path = await cni.getPluginPath(p.type);
      } catch (err) {
        problems.push(errorMessage(err));
      }
      const inv = cni.pluginInvocation('ADD', list, p, rt, path ?? '');
      const plugin: PluginPlan = { type: p.type, path, capabilities: [...p.capabilities], prevResultFrom: prev, env: inv.env, stdin: JSON.parse(inv.stdin.toString('utf8')) as Record<string, unknown>, problems, notes: [] };
      if (opts.checkPlugins && path) {
        try {
          const info = await cni.getVersionInfo(p.type, { signal: AbortSignal.timeout(cfg.cni.pluginTimeoutMs) });
          plugin.supportedVersions = info.supportedVersions;
          const wanted = list.declaredVersion || '0.1.0';
          // Not fatal by itself: podnet asks again in the highest version both speak, if any.
          if (!info.supportedVersions.includes(wanted)) plugin.notes.push(`does not speak ${wanted}: the stdin above is refused, then sent again in a negotiated version`);
        } catch (err) {
          problems.push(`VERSION failed: ${errorMessage(err)}`);
        }
      }
      for (const pr of problems) out.problems.push(`${net.ifName} (network "${net.network}") plugin ${p.type}: ${pr}`);
      net.plugins.push(plugin);
      prev = p.type;
    }
    out.networks.push(net);
  }
  return out;
}

const indent = (text: string, by: string): string => text.split('\n').map((l) => `${by}${l}`).join('\n');

/** The readable form. */
export function renderExplain(r: ExplainReport): string {
  if (!r.ok) return `RunPodSandbox would fail: ${r.code}: ${r.message}\n`;
  const lines: string[] = [];
  lines.push(`pod           ${r.pod.namespace}/${r.pod.name} (uid ${r.pod.uid}${r.pod.attempt !== undefined ? `, attempt ${r.pod.attempt}` : ''})`);
  lines.push(`handler       ${r.runtimeHandler.name}${r.runtimeHandler.requested === '' ? ' (default)' : ''}, conf dir ${r.runtimeHandler.confDir}`);
  lines.push(`              ${r.runtimeHandler.networks}`);
  lines.push(`sandbox id    ${r.sandboxId} (${r.sandboxIdNote})`);
  lines.push(`netns         ${r.netns || '-'} (${r.netnsNote})`);
  for (const n of r.networks) {
    lines.push('');
    lines.push(`${n.ifName}: network "${n.network}"${n.ref ? ` (${n.ref})` : ''}, ${n.kind}, cniVersion ${n.cniVersion || '(none)'}`);
    lines.push(`  CNI_ARGS        ${n.plugins[0]?.env['CNI_ARGS'] ?? ''}`);
    lines.push(`  capability args ${JSON.stringify(n.capabilityArgs)}`);
    n.plugins.forEach((p, i) => {
      lines.push(`  plugin ${i + 1}: ${p.type} (${p.path ?? 'NOT FOUND'})${p.supportedVersions ? ` speaks ${p.supportedVersions.join(', ')}` : ''}`);
      if (p.capabilities.length) lines.push(`    capabilities  ${p.capabilities.join(', ')}`);
      lines.push('    env');
      for (const [k, v] of Object.entries(p.env)) lines.push(`      ${k}=${v}`);
      lines.push(`    stdin${p.prevResultFrom ? ` (plus "prevResult": the ADD result of ${p.prevResultFrom})` : ''}`);
      lines.push(indent(JSON.stringify(p.stdin, null, 2), '      '));
      for (const note of p.notes) lines.push(`    note: ${note}`);
      for (const pr of p.problems) lines.push(`    PROBLEM: ${pr}`);
    });
  }
  if (r.hostNetwork) lines.push('', 'host network: the pod uses the node\'s namespace; no network is set up');
  if (r.problems.length) lines.push('', `${r.problems.length} problem(s): the ADD would fail`);
  return `${lines.join('\n')}\n`;
}

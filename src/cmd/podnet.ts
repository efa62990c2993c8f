import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CNIConfig } from '../cni/cni.js';
import { loadConfDir, type NetworkConfigList } from '../cni/config.js';
import { nadConfList, NADStore } from '../engine/attachments.js';
import { errorMessage } from '../cni/errors.js';
import { podnetVersion } from '../cri/runtime-service.js';
import { defaultConfig } from '../cri/config.js';
import { networkStatus } from '../engine/network-status.js';
import { SandboxStore, type SandboxRecord } from '../engine/store.js';
import { cnitool, UsageError } from './cnitool.js';
import { actionable, findLeaks, fixLeaks } from './doctor.js';
import { explain, renderExplain } from './explain.js';
import { hotplugCommand } from './networks.js';

const DEFAULTS = defaultConfig();

const USAGE = `usage: podnet <command> [args]

cnitool-compatible (env: NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_ARGS, CAP_ARGS, CNI_CONTAINERID):
  add <network> <netns>        ADD and print the result
  del <network> <netns>        DEL
  check <network> <netns>      CHECK
  gc <network>                 CNI GC with no valid attachments (spec 1.1.0)
  status <network>             CNI STATUS (spec 1.1.0)
    --cache-dir DIR            result cache (default ${DEFAULTS.cni.cacheDir})

Daemon state (--state-dir DIR, default ${DEFAULTS.stateDir}):
  sandboxes [--json]           table of sandboxes of both doors (DOOR cri|cni; NETNS-OWNER podnet,
                               or runtime: the container runtime's namespace, never touched by podnet)
  inspect <id>                 one sandbox: network status, results, plugin timings (JSON)
  network-status <id>          the Multus network-status list of a sandbox (JSON)
  gc                           ask the running podnetd to run CNI garbage collection now
  doctor [--fix] [--json]      list leaks: our netns with no sandbox, cache entries with no sandbox
    [--netns-dir DIR]          and no namespace, host-local allocations with neither, veths of the
    [--conf-dir DIR]           conf dir's bridges with no pod behind them; --fix releases them
                               (DEL from the cache, then remove); idle bridges are only listed

Hot-plug, through the running podnetd (--socket PATH, default ${DEFAULTS.socket}):
  attach <sandbox> <[namespace/]name[@ifname]>
    [--ip IP[/prefix]]...      attach a NetworkAttachmentDefinition's network to a ready sandbox
    [--mac MAC]                (on ifname, else the next free netN); prints its network-status
  detach <sandbox> <ifname>    detach one interface (not the cluster network's)
  networks <sandbox>           the sandbox's live network-status list (JSON)

Configs:
  explain POD.json|POD.yaml    what RunPodSandbox would do with this pod config (crictl runp's file),
    [--runtime HANDLER]        resolved from the daemon's config, conf dirs and attachments dir, with
    [--config podnetd.toml]    nothing created or run: handler and conf dir, every network and its
    [--check-plugins] [--json] interface, CNI_ARGS, capability args, each plugin's stdin and env; or
                               the error it would return, with its gRPC code. --check-plugins runs
                               VERSION of each plugin (never ADD). Exit 1 when the pod would fail
  validate [--conf-dir DIR]    load every config and every NetworkAttachmentDefinition, run VERSION
    [--attachments-dir DIR]    on each plugin, print a verdict per file (documents of other kinds
    [--cni-bin-dir DIRS]       are listed as skipped, with why)
    [--json]

  version                      print the version

Exit status: 0 success, 1 the operation failed, 2 bad usage.`;

const WELL_KNOWN_CAPABILITIES = new Set([
  'portMappings', 'ipRanges', 'bandwidth', 'dns', 'ips', 'mac', 'infinibandGUID', 'deviceID', 'aliases', 'cgroupPath', 'io.kubernetes.cri.pod-annotations',
]);

const writeStderr = (text: string): void => void process.stderr.write(text);

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n';
}

function age(createdAtNs: string): string {
  const s = Math.max(0, Math.round((Date.now() - Number(BigInt(createdAtNs) / 1_000_000n)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

/** Who owns the pod's namespace: podnet (CRI door), the runtime (CNI door), or none (host network). */
const netnsOwner = (r: SandboxRecord): string => (r.hostNetwork ? 'host' : r.netnsOwner);

/** Whether a live process runs podnetd (bin/podnetd or dist/cmd/podnetd.js, under node or not). */
async function isPodnetd(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.split('\0').slice(0, 3).some((arg) => /(^|\/)podnetd(\.js)?$/.test(arg));
}

async function findRecord(stateDir: string, id: string | undefined): Promise<SandboxRecord> {
  if (!id) throw new UsageError('a sandbox id (or unique prefix) is required');
  const matches = (await SandboxStore.readAll(stateDir)).filter((r) => r.id.startsWith(id));
  if (matches.length === 0) throw new Error(`sandbox "${id}" not found in ${stateDir}`);
  if (matches.length > 1) throw new Error(`sandbox id prefix "${id}" is ambiguous`);
  return matches[0];
}

interface ValidateRow {
  file: string;
  network: string;
  plugins: string;
  versions: string;
  verdict: string;
}

/** VERSION of each plugin of a list, against the version it is sent; unknown capabilities. */
async function checkList(cni: CNIConfig, list: NetworkConfigList, file: string, network: string): Promise<ValidateRow> {
  const problems: string[] = [];
  const versions: string[] = [];
  for (const p of list.plugins) {
    try {
      const info = await cni.getVersionInfo(p.type, { signal: AbortSignal.timeout(10_000) });
      versions.push(`${p.type}:${info.supportedVersions.at(-1) ?? '?'}`);
      // What the plugin is sent: libcni's selection (none is 0.1.0 to a plugin).
      const wanted = list.declaredVersion || '0.1.0';
      if (!info.supportedVersions.includes(wanted)) problems.push(`${p.type} does not speak ${wanted} (speaks ${info.supportedVersions.join(', ')})`);
    } catch (err) {
      problems.push(errorMessage(err));
    }
    for (const c of p.capabilities) if (!WELL_KNOWN_CAPABILITIES.has(c)) problems.push(`${p.type} declares unknown capability "${c}"`);
  }
  return {
    file,
    network,
    plugins: list.plugins.map((p) => p.type).join(','),
    versions: `${list.declaredVersion || '(none)'} [${versions.join(' ')}]`,
    verdict: problems.length ? `error: ${problems.join('; ')}` : 'ok',
  };
}

const issueRow = (file: string, verdict: string): ValidateRow => ({ file, network: '-', plugins: '-', versions: '-', verdict });

/**
 * Every config of the conf dir, then every NetworkAttachmentDefinition of the attachments dir as
 * podnetd would read it (network "namespace/name"); documents of another kind are listed as
 * skipped, with why, and do not make the exit status 1.
 */
async function validate(confDir: string, attachmentsDir: string, binDirs: string[], json: boolean): Promise<{ out: string; ok: boolean }> {
  const { lists, errors } = await loadConfDir(confDir);
  const cni = new CNIConfig({ path: binDirs, cacheDir: '/nonexistent' });
  const rows: ValidateRow[] = errors.map((e) => issueRow(e.file, `error: ${e.reason}`));
  for (const list of lists) rows.push(await checkList(cni, list, list.source ?? '-', list.name));
  const nads = await new NADStore(attachmentsDir).load();
  for (const e of nads.errors) rows.push(issueRow(e.file, `error: ${e.reason}`));
  for (const s of nads.skipped) rows.push(issueRow(s.file, `skipped: ${s.reason}`));
  for (const nad of nads.nads.values()) {
    const ref = `${nad.namespace}/${nad.name}`;
    let list: NetworkConfigList | undefined;
    try {
      list = nadConfList(nad);
    } catch (err) {
      rows.push({ ...issueRow(nad.file, `error: spec.config of ${ref} is not a valid CNI config: ${errorMessage(err)}`), network: ref });
      continue;
    }
    if (list) {
      rows.push(await checkList(cni, list, nad.file, ref));
      continue;
    }
    const base = lists.find((l) => l.name === nad.name);
    const verdict = base ? `ok: no spec.config, uses the conf-dir network "${nad.name}" (${base.source ?? '-'})` : `error: no spec.config and no conf-dir network is named "${nad.name}"`;
    rows.push({ ...issueRow(nad.file, verdict), network: ref });
  }
  const ok = rows.every((r) => r.verdict.startsWith('ok') || r.verdict.startsWith('skipped')) && rows.length > 0;
  if (json) return { out: `${JSON.stringify(rows, null, 2)}\n`, ok };
  if (rows.length === 0) return { out: `no network configs in ${confDir}\n`, ok: false };
  return { out: table([['FILE', 'NETWORK', 'PLUGINS', 'VERSIONS', 'VERDICT'], ...rows.map((r) => [r.file, r.network, r.plugins, r.versions, r.verdict])]), ok };
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      'state-dir': { type: 'string', default: DEFAULTS.stateDir },
      'cache-dir': { type: 'string', default: DEFAULTS.cni.cacheDir },
      'conf-dir': { type: 'string', default: DEFAULTS.cni.confDir },
      'attachments-dir': { type: 'string', default: DEFAULTS.attachmentsDir },
      'cni-bin-dir': { type: 'string', default: DEFAULTS.cni.binDirs.join(':') },
      json: { type: 'boolean', default: false },
      fix: { type: 'boolean', default: false },
      'netns-dir': { type: 'string', default: DEFAULTS.netnsDir },
      runtime: { type: 'string', default: '' },
      config: { type: 'string' },
      'check-plugins': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
      socket: { type: 'string', default: DEFAULTS.socket },
      ip: { type: 'string', multiple: true, default: [] },
      mac: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  const stateDir = values['state-dir'];
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  switch (cmd) {
    case 'version':
    case '--version':
      process.stdout.write(`podnet ${await podnetVersion()}\n`);
      return 0;
    case 'add':
    case 'del':
    case 'check':
    case 'status':
      process.stdout.write(await cnitool(cmd, positionals, process.env, values['cache-dir'], writeStderr));
      return 0;
    case 'gc': {
      if (positionals.length > 0) {
        process.stdout.write(await cnitool('gc', positionals, process.env, values['cache-dir'], writeStderr));
        return 0;
      }
      const pidFile = join(stateDir, 'podnetd.pid');
      const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
      if (!Number.isInteger(pid) || pid <= 1) throw new Error(`no running podnetd found (no pid in ${pidFile})`);
      // A daemon that was killed leaves its pid file behind, and the pid may belong to another
      // process by now: SIGUSR1 would terminate it. Only signal a process that runs podnetd.
      if (!(await isPodnetd(pid))) throw new Error(`no running podnetd found (pid ${pid} in ${pidFile} is not a podnetd: stale pid file?)`);
      process.kill(pid, 'SIGUSR1');
      process.stdout.write(`asked podnetd (pid ${pid}) to collect garbage; its log has the report\n`);
      return 0;
    }
    case 'sandboxes': {
      const recs = await SandboxStore.readAll(stateDir);
      if (values.json) {
        process.stdout.write(`${JSON.stringify(recs.map((r) => ({ id: r.id, pod: r.metadata.name, namespace: r.metadata.namespace, handler: r.runtimeHandler, state: r.phase, ips: r.ips.map((i) => i.ip), door: r.door, netnsOwner: netnsOwner(r), createdAt: r.cri?.createdAt })), null, 2)}\n`);
        return 0;
      }
      const rows = recs.map((r) => [r.id.slice(0, 13), r.metadata.name, r.metadata.namespace, r.network ?? (r.runtimeHandler || '-'), r.door, netnsOwner(r), r.phase, r.ips.map((i) => i.ip).join(',') || '-', r.cri ? age(r.cri.createdAt) : '-']);
      process.stdout.write(table([['ID', 'POD', 'NAMESPACE', 'HANDLER', 'DOOR', 'NETNS-OWNER', 'STATE', 'IPS', 'AGE'], ...rows]));
      return 0;
    }
    case 'inspect': {
      const r = await findRecord(stateDir, positionals[0]);
      process.stdout.write(`${JSON.stringify({ ...r, 'network-status': networkStatus(r) }, null, 2)}\n`);
      return 0;
    }
    case 'network-status': {
      const r = await findRecord(stateDir, positionals[0]);
      process.stdout.write(`${JSON.stringify(networkStatus(r), null, 2)}\n`);
      return 0;
    }
    case 'attach':
    case 'detach':
    case 'networks':
      process.stdout.write(await hotplugCommand(cmd, positionals, { socket: values.socket, ips: values.ip, mac: values.mac }));
      return 0;
    case 'doctor': {
      const opts = {
        stateDir,
        netnsDir: values['netns-dir'],
        cacheDir: values['cache-dir'],
        confDir: values['conf-dir'],
        binDirs: values['cni-bin-dir'].split(':').filter(Boolean),
      };
      const leaks = await findLeaks(opts);
      const toFix = actionable(leaks);
      const errors = values.fix ? await fixLeaks(leaks, opts) : [];
      if (values.json) process.stdout.write(`${JSON.stringify({ leaks, fixed: values.fix, errors }, null, 2)}\n`);
      else {
        if (leaks.length > 0) process.stdout.write(table([['KIND', 'PATH', 'DETAIL'], ...leaks.map((l) => [l.kind, l.path, l.informational ? `${l.detail} [info]` : l.detail])]));
        if (toFix.length === 0) process.stdout.write('no leaks found\n');
        else if (values.fix) process.stdout.write(`fixed ${toFix.length - errors.length} of ${toFix.length}\n`);
      }
      for (const e of errors) process.stderr.write(`podnet doctor: ${e}\n`);
      return errors.length > 0 || (!values.fix && toFix.length > 0) ? 1 : 0;
    }
    case 'explain': {
      if (positionals.length !== 1) throw new UsageError('explain takes one pod config file (JSON or YAML, as crictl runp)');
      const report = await explain({ podFile: positionals[0], runtimeHandler: values.runtime, checkPlugins: values['check-plugins'], ...(values.config ? { configFile: values.config } : {}) });
      process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : renderExplain(report));
      return report.ok && report.problems.length === 0 ? 0 : 1;
    }
    case 'validate': {
      const { out, ok } = await validate(values['conf-dir'], values['attachments-dir'], values['cni-bin-dir'].split(':').filter(Boolean), values.json);
      process.stdout.write(out);
      return ok ? 0 : 1;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  // Plugin errors carry a numeric CNI error code; only Node's parseArgs codes mean bad usage.
  const code = (err as { code?: unknown }).code;
  const usage = err instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'));
  process.stderr.write(`podnet: ${errorMessage(err)}\n${usage ? `${USAGE}\n` : ''}`);
  process.exitCode = usage ? 2 : 1;
}

// `podnet attach|detach|networks`: hot-plug through the running podnetd's podnet.v1.PodNetworks
// service on its socket. The daemon checks everything; the CLI only splits its arguments.
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { splitShortForm } from '../engine/attachments.js';
import { PodNetworksClient, type NetworkStatus } from '../gen/podnet/v1/podnetworks.js';
import { UsageError } from './cnitool.js';

export interface HotplugOptions {
  socket: string;
  ips: string[];
  mac: string | undefined;
}

/** A failure the daemon answered, with its status name: the CLI exits 1 with it. */
export class DaemonError extends Error {}

/** The entry as the network-status annotation's JSON writes it. */
function statusJSON(s: NetworkStatus): Record<string, unknown> {
  return {
    name: s.name,
    interface: s.interface,
    ips: s.ips,
    ...(s.mac ? { mac: s.mac } : {}),
    default: s.default,
    ...(s.dns ? { dns: Object.fromEntries(Object.entries(s.dns).filter(([, v]) => (Array.isArray(v) ? v.length > 0 : v !== ''))) } : {}),
  };
}

function call<Req, Res>(fn: (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    // A plugin may take up to podnetd's plugin_timeout (60s by default); the daemon bounds it.
    fn(req, new Metadata(), { deadline: new Date(Date.now() + 5 * 60_000) }, (err, res) => {
      if (err) reject(new DaemonError(err.details || err.message));
      else resolve(res);
    });
  });
}

/** Runs one hot-plug command; returns what to print. */
export async function hotplugCommand(cmd: 'attach' | 'detach' | 'networks', args: string[], o: HotplugOptions): Promise<string> {
  const [sandbox, target, ...extra] = args;
  if (!sandbox) throw new UsageError(`${cmd}: a sandbox id (or unique prefix) is required`);
  const wanted = cmd === 'networks' ? 0 : 1;
  if (wanted === 1 && !target) throw new UsageError(cmd === 'attach' ? 'attach: a network ([namespace/]name[@ifname]) is required' : 'detach: an interface name is required');
  if ((wanted === 0 && target !== undefined) || extra.length > 0) throw new UsageError(`${cmd}: too many arguments`);
  if (cmd !== 'attach' && (o.ips.length > 0 || o.mac !== undefined)) throw new UsageError(`${cmd}: --ip and --mac belong to attach`);
  const client = new PodNetworksClient(`unix://${o.socket}`, credentials.createInsecure());
  try {
    if (cmd === 'networks') {
      const res = await call(client.listNetworks.bind(client), { podSandboxId: sandbox });
      return `${JSON.stringify(res.networks.map(statusJSON), null, 2)}\n`;
    }
    if (cmd === 'detach') {
      await call(client.detachNetwork.bind(client), { podSandboxId: sandbox, interface: target });
      return '';
    }
    const parts = splitShortForm(target);
    if (!parts) throw new UsageError(`attach: ${JSON.stringify(target.slice(0, 128))} is not of the form [namespace/]name[@ifname]`);
    const res = await call(client.attachNetwork.bind(client), {
      podSandboxId: sandbox,
      network: {
        name: parts.name,
        namespace: parts.namespace ?? '',
        interface: parts.interface ?? '',
        ips: o.ips,
        mac: o.mac ?? '',
        portMappings: [],
        bandwidth: undefined,
        cniArgs: {},
        defaultRoute: [],
        timeout: '',
      },
    });
    return `${JSON.stringify(res.status ? statusJSON(res.status) : {}, null, 2)}\n`;
  } finally {
    client.close();
  }
}

// containerd calling podnet through the CNI door: containerd's conflist names only the
// podnet-cni shim, which forwards each call to a podnetd serving the bench network on its
// cni_server socket. The same containerd timers as the containerd contender, so the door's cost
// is this contender's set_up_pod / tear_down_pod minus containerd-alone's.
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { basename, dirname, join } from 'node:path';
import { CNI_BIN, REPO } from '../lib/config.mjs';
import { startPodnet } from '../lib/podnetd.mjs';
import { containerdBase } from './containerd.mjs';
import { NotAvailable } from './errors.mjs';

const SHIM = join(REPO, 'dist', 'libexec', 'podnet-cni');

/** GET path on a unix socket → status code, or undefined when nothing answers. */
function probe(socketPath, path) {
  return new Promise((resolve) => {
    const req = request({ socketPath, path, method: 'GET', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

export function containerdPodnetContender(run) {
  return containerdBase(run, {
    name: 'containerd-podnet',
    label: 'containerd → podnet-cni → podnetd',
    check: () => (existsSync(SHIM) ? undefined : `the podnet-cni shim (${SHIM}) is not built in this checkout`),
    async prepare(scenario, dir) {
      const socket = join(dir, 'door', 'podnet-cni.sock');
      let d;
      try {
        d = await startPodnet(run, `${basename(dir)}-podnetd`, { extraToml: `[cni_server]\nsocket = ${JSON.stringify(socket)}\n` });
      } catch (err) {
        throw new NotAvailable(`podnetd does not start with a [cni_server] socket: ${err.message.split('\n')[0].slice(0, 300)}`);
      }
      if ((await probe(socket, '/healthz')) !== 200) {
        await d.dispose();
        throw new NotAvailable(`podnetd does not serve the CNI door yet (cni_server.socket set, nothing answers GET /healthz on ${socket})`);
      }
      return {
        conflist: {
          cniVersion: '1.0.0',
          name: run.network.netName,
          plugins: [{ type: 'podnet-cni', socket, capabilities: { portMappings: true } }],
        },
        // containerd adds loopback itself: the reference plugins' dir stays on its path.
        binDirs: [dirname(SHIM), CNI_BIN],
        stop: () => d.dispose(),
      };
    },
  });
}

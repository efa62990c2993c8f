// containerd calling podnet through the CNI door: containerd's conflist names only the
// podnet-cni shim, which forwards each call to a podnetd serving the bench network on its
// cni_server socket. That podnetd runs in containerd's mount and pid namespaces (the CNI_NETNS
// bind mounts containerd hands out exist only in the mount namespace, whose /proc is the pid
// namespace's). The same containerd timers as the containerd
// contender, so the door's cost is this contender's set_up_pod / tear_down_pod minus
// containerd-alone's.
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { CNI_BIN, REPO } from '../lib/config.mjs';
import { startPodnet } from '../lib/podnetd.mjs';
import { containerdBase } from './containerd.mjs';
import { NotAvailable } from './errors.mjs';

const SHIM = join(REPO, 'dist', 'libexec', 'podnet-cni');
const doorToml = (socket) => `[cni_server]\nsocket = ${JSON.stringify(socket)}\n`;

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

/** A podnetd with a [cni_server] socket → {d, socket}; NotAvailable when it does not serve the door. */
async function startDoor(run, dirName, wrap, wrapForks) {
  const socket = join(run.root, dirName, 'door', 'podnet-cni.sock');
  let d;
  try {
    d = await startPodnet(run, dirName, { extraToml: doorToml(socket), wrap, wrapForks });
  } catch (err) {
    throw new NotAvailable(`podnetd does not start with a [cni_server] socket: ${err.message.split('\n')[0].slice(0, 300)}`);
  }
  if ((await probe(socket, '/healthz')) !== 200) {
    await d.dispose();
    throw new NotAvailable(`podnetd does not serve the CNI door yet (cni_server.socket set, nothing answers GET /healthz on ${socket})`);
  }
  return { d, socket };
}

export function containerdPodnetContender(run) {
  return containerdBase(run, {
    name: 'containerd-podnet',
    label: 'containerd → podnet-cni → podnetd',
    // Asked of this checkout's podnetd before any containerd starts: a short-lived one on the host.
    async check() {
      if (!existsSync(SHIM)) return `the podnet-cni shim (${SHIM}) is not built in this checkout`;
      try {
        const { d } = await startDoor(run, 'door-probe');
        await d.dispose();
      } catch (err) {
        if (err instanceof NotAvailable) return err.message;
        throw err;
      }
      return undefined;
    },
    async prepare(scenario, dir) {
      const dirName = `${dir.slice(run.root.length + 1)}-podnetd`;
      const socket = join(run.root, dirName, 'door', 'podnet-cni.sock');
      return {
        conflist: {
          cniVersion: '1.0.0',
          name: run.network.netName,
          plugins: [{ type: 'podnet-cni', socket, capabilities: { portMappings: true } }],
        },
        // containerd adds loopback itself: the reference plugins' dir stays on its path.
        binDirs: [dirname(SHIM), CNI_BIN],
        async beside(cd) {
          // Its pid namespace too: podnetd reads /proc/self, and the /proc in there is that namespace's.
          const { d } = await startDoor(run, dirName, (cmd, args) => cd.mountNsCommand(cmd, args, { pidNs: true }), true);
          return { stop: () => d.dispose() };
        },
      };
    },
  });
}

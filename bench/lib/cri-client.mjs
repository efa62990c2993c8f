// A CRI runtime.v1 client over grpc-js on a unix socket, and the bench's pod config: the same
// for podnetd and containerd, so neither side's RPC times carry a different client's cost.
import { credentials, Metadata } from '@grpc/grpc-js';
import { hex } from './cleanup.mjs';
import { hostPort } from './network.mjs';

const RPC_TIMEOUT_MS = 120_000;

/** api: dist/gen/runtime/v1/api.js; → {call(method, req, timeoutMs?) → Promise<res>, close()}. */
export function criClient(api, socket) {
  const client = new api.RuntimeServiceClient(`unix://${socket}`, credentials.createInsecure(), {
    'grpc.initial_reconnect_backoff_ms': 10,
    'grpc.max_reconnect_backoff_ms': 100,
    // A fresh subchannel: a shared one may still be backing off from a previous daemon.
    'grpc.use_local_subchannel_pool': 1,
  });
  return {
    call(method, req, timeoutMs = RPC_TIMEOUT_MS) {
      return new Promise((resolve, reject) => {
        client[method](req, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
          if (err) reject(new Error(`${method}: ${err.details || err.message}`));
          else resolve(res);
        });
      });
    },
    close: () => client.close(),
  };
}

/** A fresh pod's config; one TCP mapping to its own 127.0.0.1 host port when withHostPort. */
export function benchPodConfig(api, { withHostPort, logDirectory, linux = {} }) {
  const s = hex(10);
  return api.PodSandboxConfig.fromPartial({
    metadata: { name: `bench-${s}`, namespace: 'bench', uid: `uid-${s}`, attempt: 0 },
    hostname: `bench-${s}`,
    logDirectory: logDirectory ?? `/var/log/pods/bench_bench-${s}_uid-${s}`,
    labels: { app: 'bench', run: s },
    annotations: { 'podnet.bench/owner': 'bench' },
    linux,
    portMappings: withHostPort ? [{ protocol: api.Protocol.TCP, containerPort: 80, hostPort: hostPort(), hostIp: '127.0.0.1' }] : [],
  });
}

// Test plumbing for the CNI door: a real CNIDoorServer on a real unix socket under a temp dir,
// its log lines captured, and a plain node:http client for the requests.
import { request } from 'node:http';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { CNIDoorServer } from '../../src/cnidoor/server.js';
import { Cleanup, tmpDir } from '../helpers/env.js';
import { RecordingBackend } from './recording-backend.js';

export interface Door {
  server: CNIDoorServer;
  backend: RecordingBackend;
  socket: string;
  dir: string;
  logs: Record<string, unknown>[];
}

export async function startDoor(cleanup: Cleanup, socketName = 'cni/podnet-cni.sock'): Promise<Door> {
  const dir = cleanup.dir(await tmpDir('podnet-door-'));
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const backend = new RecordingBackend();
  const server = new CNIDoorServer({ backend, log: pino({ level: 'debug' }, sink) });
  const socket = join(dir, socketName);
  await server.listen(socket);
  cleanup.push(() => server.close(), 'close the CNI door');
  return { server, backend, socket, dir, logs };
}

export interface HttpAnswer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One request over the unix socket; body as given (a string is sent as is, anything else as JSON). */
export function http(socket: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const req = request({ socketPath: socket, method, path, headers: { ...headers, ...(data === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) }) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

export const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64');

/** The stdin containerd's libcni builds for a podnet-cni plugin of a 1.0.0 list. */
export function shimStdin(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: '1.0.0', name: 'podnet', type: 'podnet-cni', ...extra };
}

export function cniEnv(command: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: 'c0ffee00aa',
    CNI_NETNS: '/var/run/netns/cni-1234',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
    CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=c0ffee00aa;K8S_POD_UID=uid-1',
    ...extra,
  };
}

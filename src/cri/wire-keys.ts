import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/**
 * Map keys that a JavaScript object cannot hold as data. The generated decoder builds each
 * protobuf map as a plain object, so an entry keyed "__proto__" is dropped without a trace (the
 * assignment hits the prototype setter): a label selector of {"__proto__": "x"} would arrive
 * empty and match every sandbox. Such a key is also never a valid Kubernetes label or annotation
 * key (they start with an alphanumeric), so it is refused rather than carried.
 */
const LOST_KEYS = new Set(['__proto__']);
const LOST_KEY_BYTES = [...LOST_KEYS].map((k) => Buffer.from(k, 'utf8'));

const PROTO_FILES = ['../../proto/runtime/v1/api.proto', '../../proto/podnet/v1/podnetworks.proto'].map((f) => fileURLToPath(new URL(f, import.meta.url)));

let root: protobuf.Root | undefined;

function schema(): protobuf.Root {
  if (!root) {
    // keepCase: refusals name fields as the proto does (label_selector), like every other check.
    root = new protobuf.Root().loadSync(PROTO_FILES, { keepCase: true });
    root.resolveAll();
  }
  return root;
}

/** The request message type of a gRPC method path ("/runtime.v1.RuntimeService/RunPodSandbox"). */
function requestType(path: string): protobuf.Type | undefined {
  const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
  if (!m) return undefined;
  const service = schema().lookup(m[1]);
  if (!(service instanceof protobuf.Service)) return undefined;
  return service.methods[m[2]]?.resolvedRequestType ?? undefined;
}

/** Whether a map key is one the decoded object cannot hold (see LOST_KEYS). */
export function isLostKey(key: string): boolean {
  return LOST_KEYS.has(key);
}

export interface LostKey {
  /** The map field's path, e.g. "config.labels". */
  field: string;
  key: string;
}

/**
 * The first map entry of a request whose key the decoded object cannot hold, or undefined. Runs on bytes the generated decoder already
 * accepted; walks only map and message fields, by the schema in proto/.
 */
export function lostMapKey(path: string, bytes: Uint8Array): LostKey | undefined {
  // A protobuf string is its UTF-8 bytes on the wire: a request none of whose bytes spell a lost
  // key holds none (nearly every request), and needs no walk.
  if (!LOST_KEY_BYTES.some((k) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).includes(k))) return undefined;
  const type = requestType(path);
  return type ? walk(type, bytes, '') : undefined;
}

const MAX_DEPTH = 32;

function walk(type: protobuf.Type, bytes: Uint8Array, prefix: string, depth = 0): LostKey | undefined {
  if (depth > MAX_DEPTH) return undefined;
  const r = protobuf.Reader.create(bytes);
  while (r.pos < r.len) {
    const tag = r.uint32();
    const wireType = tag & 7;
    const field = type.fieldsById[tag >>> 3];
    if (!field || wireType !== 2) {
      r.skipType(wireType);
      continue;
    }
    const body = r.bytes();
    const name = `${prefix}${field.name}`;
    if (field.map) {
      const key = entryKey(body);
      if (key !== undefined && LOST_KEYS.has(key)) return { field: name, key };
    } else if (field.resolvedType instanceof protobuf.Type) {
      const found = walk(field.resolvedType, body, `${name}.`, depth + 1);
      if (found) return found;
    }
  }
  return undefined;
}

/** Field 1 of a map entry, when it is a string. */
function entryKey(entry: Uint8Array): string | undefined {
  const r = protobuf.Reader.create(entry);
  let key: string | undefined;
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === ((1 << 3) | 2)) key = r.string();
    else r.skipType(tag & 7);
  }
  return key;
}

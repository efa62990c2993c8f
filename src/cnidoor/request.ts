/**
 * The thick-plugin request body (`{"env": {...}, "config": <base64 of stdin>,
 * "interfaceAttributes": {...}}`, multus' api.Request) turned into a typed backend call. Nothing
 * reaches the backend before all of it is checked.
 */
import { isIP } from 'node:net';
import { confListFromConfBytes, validatePluginType } from '../cni/config.js';
import { ConfigError, errorMessage } from '../cni/errors.js';
import { isObject, jsonDepth, parseJSON, type JSONObject, type JSONValue } from '../util/json.js';
import type { AttachmentCall, DelegateCall, GCCall, InterfaceAttributes, StatusCall } from './backend.js';
import { parseCniArgs, parseCommand, parseContainerID, parseEnvObject, parseIfName, parseNetns, parsePath, parsePod, type Command } from './env.js';
import { badConfig, CNIDoorError, DoorErrorCode, quote, undecodable, unsupportedField } from './errors.js';
import { checkResultVersion, checkVersion, parseShimConfig } from './netconf.js';
import { compareVersions, SUPPORTED_VERSIONS } from '../cni/version.js';

export const MAX_BODY_BYTES = 1 << 20;
export const MAX_JSON_DEPTH = 32;
const MAX_CONFIG_BYTES = 512 * 1024;
const MAX_IPS = 32;
const MAX_CNI_ARGS_BYTES = 64 * 1024;

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const MAC_RE = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$/;

/** What a request has shown about itself so far, for its log line (only checked values). */
export interface RequestFacts {
  command?: Command;
  containerID?: string;
  ifName?: string;
}

/** JSON with a depth bound; `what` names the text in the error. */
export function parseBoundedJSON(text: string, what: string): unknown {
  if (jsonDepth(text) > MAX_JSON_DEPTH) throw undecodable(`${what} is nested deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    return parseJSON(text);
  } catch (err) {
    throw undecodable(`${what} is not valid JSON: ${quote(errorMessage(err), 120)}`);
  }
}

interface Body {
  env: Map<string, string>;
  config: Buffer;
  configJSON: unknown;
  interfaceAttributes: InterfaceAttributes | undefined;
  resultVersion: string | undefined;
}

function parseInterfaceAttributes(v: JSONValue | undefined): InterfaceAttributes | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw badConfig(`interfaceAttributes: expected an object, got ${quote(v)}`);
  const out: { ips: string[]; mac: string; cniArgs: Map<string, JSONValue> } = { ips: [], mac: '', cniArgs: new Map() };
  for (const [k, x] of Object.entries(v)) {
    if (k === 'ips') {
      if (x === null) continue;
      if (!Array.isArray(x) || x.length > MAX_IPS) throw badConfig(`interfaceAttributes.ips: expected a list of at most ${MAX_IPS} addresses`);
      out.ips = x.map((ip, i) => {
        const addr = typeof ip === 'string' ? ip.split('/') : [];
        const ok = addr.length >= 1 && addr.length <= 2 && isIP(addr[0]) !== 0 && (addr.length === 1 || /^\d{1,3}$/.test(addr[1]));
        if (!ok || Number(addr[1] ?? 0) > (isIP(addr[0]) === 4 ? 32 : 128)) throw badConfig(`interfaceAttributes.ips[${i}]: ${quote(ip)} is not an IP address or CIDR`);
        return ip as string;
      });
    } else if (k === 'mac') {
      if (x === null || x === '') continue;
      if (typeof x !== 'string' || !MAC_RE.test(x)) throw badConfig(`interfaceAttributes.mac: ${quote(x)} is not a MAC address`);
      out.mac = x;
    } else if (k === 'cni-args') {
      if (x === null) continue;
      if (!isObject(x)) throw badConfig(`interfaceAttributes.cni-args: expected an object, got ${quote(x)}`);
      if (JSON.stringify(x).length > MAX_CNI_ARGS_BYTES) throw badConfig(`interfaceAttributes.cni-args is larger than ${MAX_CNI_ARGS_BYTES} bytes`);
      for (const [ak, av] of Object.entries(x)) out.cniArgs.set(ak, av);
    } else {
      throw unsupportedField(`interfaceAttributes.${k}`, x);
    }
  }
  return out;
}

/** The HTTP body: envelope keys, env, base64 config and its JSON. */
export function parseBody(text: string, facts: RequestFacts): Body {
  const raw = parseBoundedJSON(text, 'request body');
  if (!isObject(raw)) throw undecodable(`request body: expected a JSON object, got ${quote(raw)}`);
  const body: JSONObject = raw;
  for (const k of Object.keys(body)) if (!['env', 'config', 'interfaceAttributes', 'resultVersion'].includes(k)) throw unsupportedField(k, body[k]);
  const env = parseEnvObject(body['env'] ?? {});
  const command = parseCommand(env);
  facts.command = command;
  const b64 = body['config'];
  if (typeof b64 !== 'string' || b64 === '') throw badConfig('config is required: the base64 of the plugin stdin');
  if (b64.length > Math.ceil(MAX_CONFIG_BYTES / 3) * 4) throw badConfig(`config is larger than ${MAX_CONFIG_BYTES} bytes`);
  if (!BASE64_RE.test(b64)) throw undecodable('config is not standard base64');
  const config = Buffer.from(b64, 'base64');
  const configJSON = parseBoundedJSON(config.toString('utf8'), 'config');
  const rv = body['resultVersion'];
  return {
    env,
    config,
    configJSON,
    interfaceAttributes: parseInterfaceAttributes(body['interfaceAttributes']),
    resultVersion: rv === undefined || rv === null ? undefined : checkResultVersion(rv),
  };
}

export type CNIRequest =
  | { kind: 'attachment'; call: AttachmentCall; resultVersion: string | undefined }
  | { kind: 'gc'; call: GCCall }
  | { kind: 'status'; call: StatusCall }
  | { kind: 'version'; cniVersion: string };

/** POST /cni: what the shim (ours or multus-shim) forwards of one plugin call. */
export function parseCNIRequest(text: string, facts: RequestFacts): CNIRequest {
  const body = parseBody(text, facts);
  const { env } = body;
  const command = facts.command!;
  if (command === 'VERSION') {
    const v = isObject(body.configJSON) ? body.configJSON['cniVersion'] : undefined;
    return { kind: 'version', cniVersion: checkVersion(typeof v === 'string' ? v : undefined, 'cniVersion', SUPPORTED_VERSIONS) };
  }
  const path = parsePath(env);
  if (command === 'GC' || command === 'STATUS') {
    const conf = parseShimConfig(body.configJSON, command);
    if (compareVersions(conf.cniVersion, '1.1.0') < 0) {
      throw new CNIDoorError(DoorErrorCode.IncompatibleVersion, `${command} needs cniVersion 1.1.0, the config has ${quote(conf.cniVersion)}`);
    }
    const base = { path, cniVersion: conf.cniVersion, configName: conf.name, network: conf.network, runtimeHandler: conf.runtimeHandler, config: body.config };
    return command === 'GC' ? { kind: 'gc', call: { ...base, validAttachments: conf.validAttachments ?? [] } } : { kind: 'status', call: base };
  }
  const containerID = parseContainerID(env);
  facts.containerID = containerID;
  const ifName = parseIfName(env);
  facts.ifName = ifName;
  const netns = parseNetns(env, command !== 'DEL');
  const args = parseCniArgs(env);
  const pod = parsePod(args, command === 'ADD');
  const conf = parseShimConfig(body.configJSON, command);
  return {
    kind: 'attachment',
    resultVersion: body.resultVersion,
    call: {
      command,
      containerID,
      netns,
      ifName,
      path,
      args,
      pod,
      cniVersion: conf.cniVersion,
      configName: conf.name,
      network: conf.network,
      runtimeHandler: conf.runtimeHandler,
      runtimeConfig: conf.runtimeConfig,
      prevResult: conf.prevResult,
      config: body.config,
      interfaceAttributes: body.interfaceAttributes,
    },
  };
}

/** POST /delegate: one network's config onto a running pod (multus-dynamic-networks-controller). */
export function parseDelegateRequest(text: string, facts: RequestFacts): DelegateCall {
  const body = parseBody(text, facts);
  const { env } = body;
  const command = parseCommand(env, ['ADD', 'DEL']) as 'ADD' | 'DEL';
  const containerID = parseContainerID(env);
  facts.containerID = containerID;
  const ifName = parseIfName(env);
  facts.ifName = ifName;
  const netns = parseNetns(env, command === 'ADD');
  const args = parseCniArgs(env);
  const pod = parsePod(args, true)!;
  let list;
  try {
    list = confListFromConfBytes(body.config);
    // libcni checks a type only when it runs the plugin; a hot-plug config is refused before.
    for (const p of list.plugins) validatePluginType(p.type);
  } catch (err) {
    if (err instanceof ConfigError) throw badConfig(`config: ${quote(err.message, 200)}`);
    throw err;
  }
  // libcni takes a missing cniVersion as 0.1.0; a hot-plug network must say which it speaks.
  if (!list.declaredVersion) throw badConfig('config: cniVersion is required');
  return { command, containerID, netns, ifName, args, pod, networkName: list.name, cniVersion: list.cniVersion, config: body.config, interfaceAttributes: body.interfaceAttributes };
}

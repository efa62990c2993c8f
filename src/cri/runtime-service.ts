import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../util/write-atomic.js';
import {
  CgroupDriver,
  type RuntimeConfigResponse,
  type StatusRequest,
  type StatusResponse,
  type UpdateRuntimeConfigRequest,
  type VersionResponse,
} from '../gen/runtime/v1/api.js';
import type { DaemonConfig } from './config.js';
import { invalidArgument, toCRIError } from './errors.js';
import { quote } from '../util/quote.js';
import { ipFamily } from '../util/ip.js';
import type { NetworkManager } from '../engine/network-manager.js';
import { renderTemplate, templateData } from './template.js';

export const RUNTIME_NAME = 'podnet';
export const RUNTIME_API_VERSION = 'v1';
/** The kubelet-facing API version string, as containerd answers it. */
export const KUBE_API_VERSION = '0.1.0';
/** Where a rendered conf_template goes; sorts before most hand-written files, like containerd's. */
export const TEMPLATE_CONF_NAME = '10-podnet-net.conflist';

let cachedVersion: string | undefined;

/** Our package version, read once. */
export async function podnetVersion(): Promise<string> {
  if (cachedVersion) return cachedVersion;
  try {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    cachedVersion = pkg.version ?? '0.0.0';
  } catch {
    cachedVersion = '0.0.0';
  }
  return cachedVersion;
}

/** Version, Status, UpdateRuntimeConfig, RuntimeConfig: the node-level RPCs. */
export class RuntimeInfoService {
  private podCIDRs: string[] = [];

  constructor(
    private readonly cfg: DaemonConfig,
    private readonly networks: NetworkManager,
    private readonly log: Logger,
  ) {}

  async version(): Promise<VersionResponse> {
    return { version: KUBE_API_VERSION, runtimeName: RUNTIME_NAME, runtimeVersion: await podnetVersion(), runtimeApiVersion: RUNTIME_API_VERSION };
  }

  status(req: StatusRequest): StatusResponse {
    const net = this.networks.status();
    const response: StatusResponse = {
      status: {
        conditions: [
          { type: 'RuntimeReady', status: true, reason: '', message: '' },
          {
            type: 'NetworkReady',
            status: net.ready,
            reason: net.ready ? '' : 'NetworkPluginNotReady',
            message: net.ready ? '' : `Network plugin returns error: ${net.message}`,
          },
        ],
      },
      info: {},
      runtimeHandlers: this.networks.declaredHandlers().map((name) => ({
        name: name === this.cfg.defaultRuntimeHandler ? '' : name,
        features: { recursiveReadOnlyMounts: false, userNamespaces: false },
      })),
      features: { supplementalGroupsPolicy: false, userNamespacesHostNetwork: false },
    };
    if (req.verbose) {
      response.info = {
        config: JSON.stringify(this.cfg),
        cniconfig: JSON.stringify(this.networks.info()),
        lastCNILoadStatus: net.ready ? 'OK' : net.message,
        podCIDRs: JSON.stringify(this.podCIDRs),
      };
      for (const handler of Object.keys(this.cfg.runtimes)) {
        const s = this.networks.status(handler);
        response.info[`lastCNILoadStatus.${handler}`] = s.ready ? 'OK' : s.message;
      }
    }
    return response;
  }

  /**
   * The kubelet hands us the node's pod CIDR(s). With conf_template set and no network loaded
   * yet, we render the default network from the template into the conf dir, as containerd does.
   */
  async updateRuntimeConfig(req: UpdateRuntimeConfigRequest): Promise<void> {
    const raw = req.runtimeConfig?.networkConfig?.podCidr ?? '';
    if (raw === '') return;
    const cidrs = raw.split(',').map((c) => c.trim());
    if (cidrs.length > 2) throw invalidArgument(`runtime_config.network_config.pod_cidr: ${quote(raw)} has more than one CIDR per IP family`);
    const families = new Set<number>();
    for (const c of cidrs) {
      const family = c.includes('/') ? ipFamily(c, true) : undefined;
      if (!family) throw invalidArgument(`runtime_config.network_config.pod_cidr: ${quote(c)} is not a CIDR`);
      if (families.has(family)) throw invalidArgument(`runtime_config.network_config.pod_cidr: ${quote(raw)} has more than one CIDR per IP family`);
      families.add(family);
    }
    this.podCIDRs = cidrs;
    if (!this.cfg.cni.confTemplate) return;
    if (this.networks.status().ready) {
      this.log.info({ cidrs }, 'network already configured; not rendering conf_template');
      return;
    }
    try {
      const template = await readFile(this.cfg.cni.confTemplate, 'utf8');
      const rendered = renderTemplate(template, templateData(cidrs));
      await mkdir(this.cfg.cni.confDir, { recursive: true, mode: 0o755 });
      await writeFileAtomic(join(this.cfg.cni.confDir, TEMPLATE_CONF_NAME), Buffer.from(rendered), { mode: 0o644 });
      this.log.info({ cidrs, file: join(this.cfg.cni.confDir, TEMPLATE_CONF_NAME) }, 'rendered network config from conf_template');
      await this.networks.reloadAll();
    } catch (err) {
      throw toCRIError(err, `failed to render conf_template ${this.cfg.cni.confTemplate}`);
    }
  }

  runtimeConfig(): RuntimeConfigResponse {
    return { linux: { cgroupDriver: this.cfg.cgroupDriver === 'cgroupfs' ? CgroupDriver.CGROUPFS : CgroupDriver.SYSTEMD } };
  }
}

import { parseArgs } from 'node:util';
import { ConfigFileError, defaultConfig, loadConfigFile, type DaemonConfig } from '../cri/config.js';
import { startDaemon } from '../cri/daemon.js';
import { createLogger, LOG_FORMATS, type LogFormat } from '../cri/logger.js';
import { podnetVersion } from '../cri/runtime-service.js';

const DEFAULTS = defaultConfig();

const USAGE = `usage: podnetd [flags]

Serves the CRI runtime.v1.RuntimeService (pod sandbox networking) on a unix socket.

  --config FILE          TOML config file (keys follow containerd's CRI config)
  --socket PATH          socket to serve on (default ${DEFAULTS.socket})
  --state-dir DIR        sandbox records (default ${DEFAULTS.stateDir})
  --netns-dir DIR        network namespaces (default ${DEFAULTS.netnsDir})
  --cni-bin-dir DIRS     colon-separated plugin dirs (default ${DEFAULTS.cni.binDirs.join(':')})
  --cni-conf-dir DIR     network configs (default ${DEFAULTS.cni.confDir})
  --cni-cache-dir DIR    CNI result cache (default ${DEFAULTS.cni.cacheDir})
  --log-level LEVEL      trace|debug|info|warn|error (default ${DEFAULTS.logLevel})
  --log-format FORMAT    auto|json|pretty (default ${DEFAULTS.logFormat}: pretty on a terminal, else JSON lines)
  --metrics-address A    serve Prometheus metrics on host:port (e.g. 127.0.0.1:9465)
  --version              print the version and exit
  --help                 this text

Flags override the config file.`;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: 'string' },
        socket: { type: 'string' },
        'state-dir': { type: 'string' },
        'netns-dir': { type: 'string' },
        'cni-bin-dir': { type: 'string' },
        'cni-conf-dir': { type: 'string' },
        'cni-cache-dir': { type: 'string' },
        'log-level': { type: 'string' },
        'log-format': { type: 'string' },
        'metrics-address': { type: 'string' },
        version: { type: 'boolean' },
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`podnetd: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`podnetd ${await podnetVersion()}\n`);
    return 0;
  }
  let cfg: DaemonConfig;
  try {
    cfg = values.config ? await loadConfigFile(values.config) : defaultConfig();
  } catch (err) {
    process.stderr.write(`podnetd: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.socket) cfg.socket = values.socket;
  if (values['state-dir']) cfg.stateDir = values['state-dir'];
  if (values['netns-dir']) cfg.netnsDir = values['netns-dir'];
  if (values['cni-bin-dir']) cfg.cni.binDirs = values['cni-bin-dir'].split(':').filter(Boolean);
  if (values['cni-conf-dir']) cfg.cni.confDir = values['cni-conf-dir'];
  if (values['cni-cache-dir']) cfg.cni.cacheDir = values['cni-cache-dir'];
  if (values['metrics-address']) cfg.metricsAddress = values['metrics-address'];
  if (values['log-level']) {
    const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
    if (!levels.includes(values['log-level'])) {
      process.stderr.write(`podnetd: --log-level: must be one of ${levels.join(', ')}\n`);
      return 2;
    }
    cfg.logLevel = values['log-level'];
  }
  if (values['log-format']) {
    if (!(LOG_FORMATS as readonly string[]).includes(values['log-format'])) {
      process.stderr.write(`podnetd: --log-format: must be one of ${LOG_FORMATS.join(', ')}\n`);
      return 2;
    }
    cfg.logFormat = values['log-format'] as LogFormat;
  }
  const log = createLogger(cfg.logLevel, cfg.logFormat);
  let daemon;
  try {
    daemon = await startDaemon(cfg, log);
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'podnetd failed to start');
    process.stderr.write(`podnetd: ${(err as Error).message}\n`);
    return err instanceof ConfigFileError ? 2 : 1;
  }
  await new Promise<void>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      log.info({ signal: sig }, 'shutting down: finishing in-flight requests');
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      void daemon.stop().then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  log.info('podnetd stopped');
  return 0;
}

process.exitCode = await main();

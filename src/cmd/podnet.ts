import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { podnetVersion } from '../cri/runtime-service.js';

const USAGE = `usage: podnet <command> [args]

Commands:
  version                     print the version
  gc [--state-dir DIR]        ask the running podnetd to run CNI garbage collection now
  help           this text`;

async function main(argv: string[]): Promise<number> {
  const [cmd] = argv;
  switch (cmd) {
    case 'version':
    case '--version':
      process.stdout.write(`podnet ${await podnetVersion()}\n`);
      return 0;
    case 'gc': {
      const { values } = parseArgs({ args: argv.slice(1), options: { 'state-dir': { type: 'string' } }, strict: true });
      const pidFile = join(values['state-dir'] ?? '/var/lib/podnet', 'podnetd.pid');
      let pid: number;
      try {
        pid = Number((await readFile(pidFile, 'utf8')).trim());
        if (!Number.isInteger(pid) || pid <= 1) throw new Error(`bad pid in ${pidFile}`);
        process.kill(pid, 'SIGUSR1');
      } catch (err) {
        process.stderr.write(`podnet gc: no running podnetd found (${(err as Error).message})\n`);
        return 1;
      }
      process.stdout.write(`podnet gc: asked podnetd (pid ${pid}) to collect garbage; see its log for the report\n`);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      process.stderr.write(`podnet: unknown command "${cmd}"\n${USAGE}\n`);
      return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));

import { podnetVersion } from '../cri/runtime-service.js';

const USAGE = `usage: podnet <command> [args]

Commands:
  version        print the version
  help           this text`;

async function main(argv: string[]): Promise<number> {
  const [cmd] = argv;
  switch (cmd) {
    case 'version':
    case '--version':
      process.stdout.write(`podnet ${await podnetVersion()}\n`);
      return 0;
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

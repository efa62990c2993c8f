import { pino, type Logger } from 'pino';

export type LogFormat = 'auto' | 'json' | 'pretty';
export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];

/** "auto": readable lines for a person at a terminal, JSON lines for a log collector. */
export function wantsPretty(format: LogFormat, isTTY: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && isTTY);
}

/**
 * podnetd's logger. Pretty output goes through pino's own transport (pino-pretty in a worker
 * thread), so formatting never runs on the thread that serves RPCs.
 */
export function createLogger(level: string, format: LogFormat, isTTY = process.stdout.isTTY === true): Logger {
  const options = { level, base: { daemon: 'podnetd' } };
  if (!wantsPretty(format, isTTY)) return pino(options);
  return pino(options, pino.transport({ target: 'pino-pretty', options: { colorize: isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,daemon' } }));
}

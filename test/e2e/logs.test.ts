// podnetd's log format: JSON lines into a pipe, human-readable lines on a terminal (a real pty from
// script(1)), and log_format / --log-format to choose either way.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { disposeAll, expectNothingLeft, newRoot, onCleanup, prepareDaemon, REPO_ROOT, startedPids } from './harness.js';

afterAll(async () => {
  await disposeAll();
});

/** Starts podnetd (optionally under a pty), returns its output so far and a way to stop it. */
function spawnDaemon(cmd: string, args: string[]): { proc: ResultPromise; output: () => string } {
  const proc = execa(cmd, args, { reject: false, buffer: false, stdin: 'ignore', cwd: REPO_ROOT, all: true });
  if (proc.pid !== undefined) startedPids.add(proc.pid);
  let out = '';
  proc.all?.setEncoding('utf8');
  // pino-pretty colours its output on a terminal.
  proc.all?.on('data', (c: string) => (out += c.replace(/\x1b\[[0-9;]*m/g, '')));
  onCleanup(async () => {
    proc.kill('SIGTERM');
    await proc;
  }, 'podnetd (logs test)');
  return { proc, output: () => out };
}

/** Under script(1) the daemon is script's child: SIGTERM it by the pid it wrote, then script ends. */
async function stopUnderScript(stateDir: string, proc: ResultPromise): Promise<void> {
  const pid = Number((await readFile(join(stateDir, 'podnetd.pid'), 'utf8')).trim());
  startedPids.add(pid);
  process.kill(pid, 'SIGTERM');
  await proc;
}

const JSON_LINE = /^\{"level":30,.*"msg":"podnetd serving"/m;
// pino-pretty: "[HH:MM:ss.l] INFO: podnetd serving", fields on the lines after it.
const PRETTY_LINE = /^\S*\[\d\d:\d\d:\d\d\.\d{3}\] \S*INFO\S*: podnetd serving/m;

describe('podnetd logs', () => {
  it('JSON lines into a pipe (auto), readable lines with --log-format pretty or log_format = "pretty"', async () => {
    const root = await newRoot();
    const auto = await prepareDaemon({ root, socket: `${root}/a.sock` });
    const a = spawnDaemon(process.execPath, ['bin/podnetd', '--config', auto.configFile]);
    expect(await waitFor(() => JSON_LINE.test(a.output()), 20_000), a.output()).toBe(true);
    a.proc.kill('SIGTERM');
    expect((await a.proc).exitCode).toBe(0);

    const flag = spawnDaemon(process.execPath, ['bin/podnetd', '--config', auto.configFile, '--log-format', 'pretty']);
    expect(await waitFor(() => PRETTY_LINE.test(flag.output()), 20_000), flag.output()).toBe(true);
    expect(flag.output()).not.toMatch(/^\{"level"/m);
    flag.proc.kill('SIGTERM');
    expect((await flag.proc).exitCode).toBe(0);
    // The worker-thread transport flushed the last lines before the process exited.
    expect(flag.output()).toMatch(/INFO\S*: podnetd stopped/);

    const keyed = await prepareDaemon({ root, socket: `${root}/k.sock`, top: { log_format: 'pretty' } });
    const k = spawnDaemon(process.execPath, ['bin/podnetd', '--config', keyed.configFile]);
    expect(await waitFor(() => PRETTY_LINE.test(k.output()), 20_000), k.output()).toBe(true);
    k.proc.kill('SIGTERM');
    expect((await k.proc).exitCode).toBe(0);
  });

  it('readable lines on a terminal (auto), JSON there when asked with --log-format json', async () => {
    const root = await newRoot();
    const d = await prepareDaemon({ root });
    const cmd = (extra: string): string => `exec ${process.execPath} bin/podnetd --config ${d.configFile}${extra}`;
    const tty = spawnDaemon('script', ['-q', '-e', '-c', cmd(''), '/dev/null']);
    expect(await waitFor(() => PRETTY_LINE.test(tty.output()), 20_000), tty.output()).toBe(true);
    await stopUnderScript(d.stateDir, tty.proc);
    expect(tty.output()).toMatch(/INFO: podnetd stopped/);
    const json = spawnDaemon('script', ['-q', '-e', '-c', cmd(' --log-format json'), '/dev/null']);
    expect(await waitFor(() => /\{"level":30,.*"msg":"podnetd serving"/.test(json.output()), 20_000), json.output()).toBe(true);
    await stopUnderScript(d.stateDir, json.proc);
  });

  it('refuses an unknown format, naming the flag or the key', async () => {
    const root = await newRoot();
    const d = await prepareDaemon({ root });
    const flag = await execa(process.execPath, ['bin/podnetd', '--config', d.configFile, '--log-format', 'xml'], { reject: false, cwd: REPO_ROOT });
    expect(flag.exitCode).toBe(2);
    expect(flag.stderr).toContain('--log-format: must be one of auto, json, pretty');
    const keyed = await prepareDaemon({ root, top: { log_format: 'xml' } });
    const key = await execa(process.execPath, ['bin/podnetd', '--config', keyed.configFile], { reject: false, cwd: REPO_ROOT });
    expect(key.exitCode).toBe(2);
    expect(key.stderr).toContain('log_format: must be one of auto, json, pretty, not "xml"');
  });

  it('left nothing behind', async () => {
    await expectNothingLeft();
  });
});

import { readdir, readFile } from 'node:fs/promises';

/**
 * Plugin processes still working on a container after the runtime that started them died. Plugins
 * run in their own process group, so a `kill -9` of the daemon leaves them running; an ADD that
 * finishes after recovery has DEL'ed would hold its IP forever. Found by their CNI_CONTAINERID.
 */
export async function findPluginProcesses(containerIDs: ReadonlySet<string>): Promise<number[]> {
  if (containerIDs.size === 0) return [];
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let env: string;
    try {
      env = await readFile(`/proc/${entry}/environ`, 'latin1');
    } catch {
      continue;
    }
    for (const kv of env.split('\0')) {
      if (kv.startsWith('CNI_CONTAINERID=') && containerIDs.has(kv.slice('CNI_CONTAINERID='.length))) {
        pids.push(Number(entry));
        break;
      }
    }
  }
  return pids;
}

/** Kills them (and their process groups) and waits until they are gone. */
export async function killPluginProcesses(containerIDs: ReadonlySet<string>, waitMs = 5000): Promise<number> {
  const pids = await findPluginProcesses(containerIDs);
  for (const pid of pids) {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // not a group leader, or already gone
      }
    }
  }
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline && (await findPluginProcesses(containerIDs)).length > 0) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return pids.length;
}

import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** name:size:mtime of every entry, so a poll sees edits fs.watch might miss (dir re-created, NFS...). */
export async function dirSignature(dir: string): Promise<string> {
  try {
    const names = (await readdir(dir)).sort();
    const parts = await Promise.all(
      names.map(async (n) => {
        try {
          const st = await stat(join(dir, n));
          return `${n}:${st.size}:${st.mtimeMs}:${st.ino}`;
        } catch {
          return n;
        }
      }),
    );
    const self = await stat(dir);
    return `${self.ino}|${parts.join('|')}`;
  } catch {
    return 'missing';
  }
}

// Where the real CRI clients are: PATH first, then the cri-tools copy in ../shared/tools beside the
// checkout (resolved from the repo root, so a CI clone beside a copy of shared/ finds it too).
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SHARED_CRI_TOOLS = join(REPO_ROOT, '..', 'shared', 'tools', 'cri-tools');

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of crictl or critest, or undefined when neither place has it. */
export function findCriTool(name: 'crictl' | 'critest'): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir && executable(join(dir, name))) return join(dir, name);
  }
  const shared = join(SHARED_CRI_TOOLS, name);
  return executable(shared) ? shared : undefined;
}

/** Why a test that needs the tool skipped. */
export function missingToolMessage(name: string): string {
  return `${name} not found on PATH or in ${SHARED_CRI_TOOLS}: skipping the tests that drive podnetd with the real ${name}`;
}

import { readFile, realpath, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { status } from '@grpc/grpc-js';
import type { FilesystemUsage, ImageFsInfoResponse, ImageStatusRequest, ImageStatusResponse, ListImagesResponse } from '../gen/runtime/v1/api.js';
import { CRIError, unimplemented } from './errors.js';
import { systemClock, type Clock } from './sandbox-service.js';

export const NO_IMAGES_MESSAGE =
  'podnet is the pod-network half of a CRI runtime and pulls or stores no images; images belong to the container runtime (point the image endpoint at it)';

/** A path's nearest existing ancestor, symlinks resolved (the state dir may not exist yet). */
async function existingRealPath(path: string): Promise<string> {
  for (let p = path; ; p = dirname(p)) {
    try {
      return await realpath(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(p) === p) throw err;
    }
  }
}

/** mountinfo escapes space, tab, newline and backslash in paths as octal (\040). */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** The mount point of the filesystem holding path: the longest mount point that contains it. */
export async function mountPointOf(path: string): Promise<string> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  let best = '/';
  for (const line of info.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const m = unescapeMountPath(field);
    const inside = m === '/' || path === m || path.startsWith(`${m}/`);
    if (inside && m.length > best.length) best = m;
  }
  return best;
}

/**
 * The ImageService as a runtime with no images answers it. ImageFsInfo reports the filesystem
 * that holds podnet's state dir, since the kubelet's image GC and eviction read it at start.
 */
export class ImageInfoService {
  constructor(
    private readonly stateDir: string,
    private readonly clock: Clock = systemClock,
  ) {}

  listImages(): ListImagesResponse {
    return { images: [] };
  }

  imageStatus(req: ImageStatusRequest): ImageStatusResponse {
    return { image: undefined, info: req.verbose ? { info: JSON.stringify({ found: false, reason: NO_IMAGES_MESSAGE }) } : {} };
  }

  pullImage(): never {
    throw unimplemented(`PullImage: ${NO_IMAGES_MESSAGE}`);
  }

  removeImage(): never {
    throw unimplemented(`RemoveImage: ${NO_IMAGES_MESSAGE}`);
  }

  async imageFsInfo(): Promise<ImageFsInfoResponse> {
    let usage: FilesystemUsage;
    try {
      const dir = await existingRealPath(this.stateDir);
      const st = await statfs(dir, { bigint: true });
      const used = (st.blocks - st.bfree) * st.bsize;
      const inodes = st.files > st.ffree ? st.files - st.ffree : 0n;
      usage = { timestamp: this.clock.nowNs(), fsId: { mountpoint: await mountPointOf(dir) }, usedBytes: { value: used }, inodesUsed: { value: inodes } };
    } catch (err) {
      throw new CRIError(status.UNAVAILABLE, `ImageFsInfo: cannot measure the filesystem of state dir ${this.stateDir}: ${(err as Error).message}`);
    }
    // One filesystem holds both, as far as podnet knows: its own state.
    return { imageFilesystems: [usage], containerFilesystems: [{ ...usage, fsId: { ...usage.fsId! } }] };
  }
}

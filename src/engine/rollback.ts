import type { AttachmentRecord, SandboxRecord } from './store.js';

/**
 * How far each attachment's ADD got in a RunPodSandbox that failed: the plugins whose ADD
 * returned, from the per-plugin timings of the call. Written into the record before the rollback,
 * so the decision below survives a restart.
 */
export function recordAddProgress(rec: SandboxRecord): void {
  for (const a of rec.attachments) {
    a.addedPlugins = rec.timings.filter((t) => t.verb === 'ADD' && !t.error && t.network === a.network && t.ifName === a.ifName).map((t) => t.plugin);
  }
}

/**
 * An attachment no plugin of which returned from ADD holds nothing a DEL could release, so a
 * failure of its DEL may be ignored (it may fail for the very reason ADD did: a range too small).
 * Anything else may hold an address, even if the chain failed later (bridge's ADD returned,
 * portmap's failed): its DEL must succeed before the sandbox is forgotten. An attachment with no
 * recorded progress (a ready sandbox, or one a crash interrupted) may hold resources.
 */
export function neverAdded(a: AttachmentRecord): boolean {
  return a.addedPlugins !== undefined && a.addedPlugins.length === 0;
}

// Moved to src/util/json.ts (shared by several layers); re-exported here for the library's public surface.
export * from '../util/json.js';

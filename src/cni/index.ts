// The public surface of podnet's CNI runtime library.
export * from './config.js';
export * from './errors.js';
export * from './exec.js';
export * from './invoke.js';
export * from './cache.js';
export * from './cni.js';
export * from './networks.js';
export * from './result.js';
export * from './runtime-conf.js';
export * from './version.js';
export * from './json.js';

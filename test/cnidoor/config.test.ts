// The cni_server table of podnetd's TOML (the CNI door's socket).
import { describe, expect, it } from 'vitest';
import { ConfigFileError, defaultConfig, parseConfig, resolvePaths } from '../../src/cri/config.js';

describe('cni_server.socket', () => {
  it('defaults to /run/podnet/cni/podnet-cni.sock', () => {
    expect(defaultConfig().cniServer.socket).toBe('/run/podnet/cni/podnet-cni.sock');
  });

  it('is read from [cni_server], relative to the config file, and a Multus path works', () => {
    expect(parseConfig('[cni_server]\nsocket = "/run/multus/multus.sock"\n').cniServer.socket).toBe('/run/multus/multus.sock');
    expect(resolvePaths(parseConfig('[cni_server]\nsocket = "run/door.sock"\n'), '/etc/podnet').cniServer.socket).toBe('/etc/podnet/run/door.sock');
  });

  it('refuses unknown keys and wrong types in the table', () => {
    expect(() => parseConfig('[cni_server]\nsockets = "/x"\n')).toThrow(new ConfigFileError('unknown config key "cni_server.sockets"'));
    expect(() => parseConfig('[cni_server]\nsocket = 3\n')).toThrow(/cni_server.socket: must be a string/);
  });
});

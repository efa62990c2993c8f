import { status } from '@grpc/grpc-js';
import { expect } from 'vitest';
import { CRIError } from '../../src/cri/errors.js';

/** The message of the INVALID_ARGUMENT that fn throws; fails the test if it throws nothing else. */
export function invalidArgumentMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CRIError);
    expect((err as CRIError).code).toBe(status.INVALID_ARGUMENT);
    return (err as CRIError).message;
  }
  throw new Error('expected INVALID_ARGUMENT, but nothing was thrown');
}

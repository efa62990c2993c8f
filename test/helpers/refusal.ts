import { status } from '@grpc/grpc-js';
import { expect } from 'vitest';
import { CRIError, toCRIError } from '../../src/cri/errors.js';
import { EngineError } from '../../src/engine/errors.js';

/**
 * The message of the INVALID_ARGUMENT that fn throws; fails the test if it throws nothing else.
 * A CRI-side check throws the status itself; an engine check throws its own kind, which the CRI
 * door maps to the status once.
 */
export function invalidArgumentMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof EngineError) expect(err.kind).toBe('invalid-request');
    else expect(err).toBeInstanceOf(CRIError);
    expect(toCRIError(err).code).toBe(status.INVALID_ARGUMENT);
    return (err as Error).message;
  }
  throw new Error('expected INVALID_ARGUMENT, but nothing was thrown');
}

/** What p is rejected with, checked to be a `kind`; the test fails if p resolves or fails with something else. */
export async function rejectionOf<E>(p: Promise<unknown>, kind: abstract new (...args: never[]) => E): Promise<E> {
  const err: unknown = await p.then(
    () => new Error('expected a rejection, but the promise resolved'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(kind);
  return err as E;
}

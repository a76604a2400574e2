/** An unexpected failure with a stable code, whether retrying may help, and its cause. */
export class HubError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, opts: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'HubError';
    this.code = code;
    this.retryable = opts.retryable ?? false;
  }
}

/** Expected outcomes are values, not exceptions. */
export type Result<T, E = HubError> = { ok: true; value: T } | { ok: false; error: E };

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const err = <E>(error: E): Result<never, E> => ({ ok: false, error });

/** A short, secret-free description of anything thrown. */
export function describeError(e: unknown): { code: string; message: string; retryable: boolean } {
  if (e instanceof HubError) return { code: e.code, message: e.message, retryable: e.retryable };
  if (e instanceof Error) return { code: e.name || 'Error', message: e.message, retryable: false };
  return { code: 'Unknown', message: String(e), retryable: false };
}

/**
 * Thrown by a consumer's handler that stopped because its partition is being handed over (a
 * rebalance, the consumer leaving): the record is neither done nor failed, its offset is not
 * committed, and the partition's next owner takes it up (a resumable command resumes there).
 */
export class HandedOver extends Error {
  constructor(message = 'the partition is being handed over to another member') {
    super(message);
    this.name = 'HandedOver';
  }
}

/**
 * Thrown by a consumer's handler that cannot go on with a record for `ms` (a vendor's
 * Retry-After, a workspace's rate limit): the record's partition is paused that long, its offset
 * not resolved, and the record is fetched again after; the consumer's other partitions go on
 * meanwhile instead of waiting for this one inside the batch.
 */
export class Deferred extends Error {
  constructor(readonly ms: number, message = `waiting ${ms} ms before going on`) {
    super(message);
    this.name = 'Deferred';
  }
}

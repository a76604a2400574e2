import { Deferred, HubError } from '../errors.ts';
import type { FailureAction } from './types.ts';

/**
 * The default failure table, per error class:
 * - Deferred, or HubError `rate_limited` with `retryAfterMs` -> pause the partition that long (others go on)
 * - HubError retryable                          -> retry with backoff, then dead-letter
 * - anything else (poison, bad input, bugs)      -> dead-letter at once
 */
export function defaultClassify(e: unknown): FailureAction {
  if (e instanceof Deferred) return { action: 'pause', ms: e.ms };
  if (e instanceof HubError && e.code === 'rate_limited') return { action: 'pause', ms: Number((e as HubError & { retryAfterMs?: number }).retryAfterMs ?? 1000) };
  if (e instanceof HubError && e.retryable) return { action: 'retry' };
  return { action: 'dead_letter' };
}

/** Backoff before attempt `attempts + 1`: exponential, capped, with half of it jittered. */
export function backoffDelay(attempts: number, backoff: { initial: number; max: number }): number {
  const delay = Math.min(backoff.max, backoff.initial * 2 ** (attempts - 1));
  return delay / 2 + Math.random() * (delay / 2);
}

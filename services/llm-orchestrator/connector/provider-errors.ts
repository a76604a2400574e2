import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { redactString } from '../../../shared/redact.ts';
import { retryAfterMs } from '../../../shared/connectors/types.ts';

/** What one failed provider call means for the chain. */
export interface ProviderFailure {
  /** 429, 408, 5xx, timeout, connection refused: try the next provider, cool this one down. */
  retryable: boolean;
  /**
   * The key's credits or spend limit are used up (OpenAI's 429 `insufficient_quota`): try the next
   * provider, but waiting does not help, so it is not retryable.
   */
  quotaExhausted?: boolean;
  /** HTTP status; 0 when there was no answer (connection refused, timeout). */
  status: number;
  /** The provider's own reason, secret-free. */
  reason: string;
  retryAfterMs?: number;
  /** The provider's error code (`content_policy_violation`, `invalid_api_key`, ...). */
  code?: string;
  /** Our own signal fired (the worker's action timeout): stop walking the chain. */
  aborted?: boolean;
}

/**
 * Reads an error from the openai package. Anything that is not a provider answer or a network
 * failure (a bug of ours) is returned as null and rethrown by the caller.
 */
export function classifyProviderError(e: unknown): ProviderFailure | null {
  if (e instanceof APIUserAbortError) return { retryable: true, status: 0, reason: 'aborted: the action timed out', aborted: true };
  if (e instanceof APIConnectionTimeoutError) return { retryable: true, status: 0, reason: 'timed out waiting for the provider' };
  if (e instanceof APIConnectionError) {
    const cause = (e.cause as { cause?: { code?: string }; code?: string } | undefined) ?? {};
    const code = cause.code ?? cause.cause?.code;
    return { retryable: true, status: 0, reason: redactString(`connection failed${code ? ` (${code})` : ''}: ${e.message}`) };
  }
  if (e instanceof APIError && typeof e.status === 'number') {
    const body = (e.error ?? {}) as { message?: unknown };
    const message = typeof body.message === 'string' ? body.message : e.message;
    const code = typeof e.code === 'string' ? e.code : undefined;
    // OpenAI answers a used-up quota with 429 like a rate limit, but no retry restores it: only
    // credits or a higher limit do (type insufficient_quota; code insufficient_quota, or which limit).
    const quotaExhausted = e.status === 429 && (e.type === 'insufficient_quota' || code === 'insufficient_quota');
    const retryable = !quotaExhausted && (e.status === 408 || e.status === 409 || e.status === 429 || e.status >= 500);
    const headers = e.headers;
    const afterMs = Number(headers?.get('retry-after-ms'));
    return {
      retryable,
      quotaExhausted,
      status: e.status,
      code,
      reason: redactString(`${e.status}${e.type ? ` ${e.type}` : ''}${code ? `/${code}` : ''}: ${message}`).slice(0, 500),
      retryAfterMs: Number.isFinite(afterMs) && afterMs > 0 ? afterMs : retryAfterMs(headers?.get('retry-after')),
    };
  }
  return null;
}

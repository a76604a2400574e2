import { HubError } from '../../../shared/errors.ts';
import { VendorError } from '../../../shared/connectors/types.ts';

/** TikTok said the access token is invalid or expired: the caller refreshes once, then gives up. */
export class AccessTokenInvalid extends HubError {
  constructor(message: string) {
    super('access_token_invalid', message, { retryable: false });
  }
}

/** When TikTok throttles and says nothing about when to come back (it sends no Retry-After). */
export const DEFAULT_THROTTLE_MS = 10_000;

/**
 * TikTok's error codes (the `error.code` of the v2 envelope) -> what the command core does:
 *
 * | code                                  | HTTP | becomes                                  | core does                          |
 * | ------------------------------------- | ---- | ---------------------------------------- | ---------------------------------- |
 * | access_token_invalid                  | 401  | AccessTokenInvalid                       | (handled here: refresh once, then needs_reauthorization) |
 * | scope_not_authorized                  | 401  | HubError scope_not_authorized            | fail at once, naming what to grant |
 * | scope_permission_missed               | 400  | HubError scope_permission_missed         | fail at once, naming what to grant |
 * | rate_limit_exceeded                   | 429  | VendorError 429 (Retry-After or 10 s)    | retry with backoff, then dead-letter |
 * | internal_error, any 5xx, network      | 5xx  | VendorError 5xx                          | retry with backoff, then dead-letter |
 * | invalid_params, spam_risk_*, ... (4xx)| 4xx  | HubError tiktok_<code>                   | fail at once                       |
 */
export function fromTikTok(a: { status: number; code: string; message: string; logId?: string; path: string; scopes: string[]; retryAfterMs?: number }): Error {
  const where = `TikTok ${a.path}: ${a.message || a.code}${a.logId ? ` (log_id ${a.logId})` : ''}`;
  switch (a.code) {
    case 'access_token_invalid':
      return new AccessTokenInvalid(where);
    case 'scope_not_authorized':
    case 'scope_permission_missed':
      return new HubError(a.code, `${where}. Re-authorize the account granting: ${a.scopes.join(', ')}`);
    case 'rate_limit_exceeded':
      return new VendorError(429, where, { retryAfterMs: a.retryAfterMs ?? DEFAULT_THROTTLE_MS });
  }
  if (a.status >= 500 || a.code === 'internal_error') return new VendorError(a.status >= 500 ? a.status : 500, where);
  if (a.status === 429) return new VendorError(429, where, { retryAfterMs: a.retryAfterMs ?? DEFAULT_THROTTLE_MS });
  return new HubError(`tiktok_${a.code.replace(/[^a-z0-9_]/gi, '_').slice(0, 60) || a.status}`, where);
}

/**
 * TikTok (or a proxy in front of it) answered and refused: nothing was done there, so the call
 * may run again. Every 4xx, with TikTok's envelope or without one; not a 5xx or a network error,
 * after which the call may or may not have taken effect.
 */
export function refusedByTikTok(e: unknown): boolean {
  if (e instanceof VendorError) return e.status >= 400 && e.status < 500;
  return e instanceof HubError; // AccessTokenInvalid, scope errors, tiktok_<code> (all 4xx)
}

import { createHash, randomInt } from 'node:crypto';
import { HubError } from '../../../shared/errors.ts';
import { outboundFetch } from '../../../shared/net/outbound.ts';
import { registerSecret } from '../../../shared/redact.ts';

/**
 * TikTok Login Kit v2: the authorize URL with PKCE and POST /v2/oauth/token/ (authorization code,
 * refresh token, client credentials). These answer a flat body
 * (`{access_token, ...}` or `{error, error_description, log_id}`), not the data API's envelope.
 */
export interface OAuthConfig {
  baseUrl: string;
  authorizeUrl: string;
  clientKey: string;
  clientSecret: string;
}

export interface TokenSet {
  access_token: string;
  refresh_token: string;
  open_id: string;
  scope: string[];
  /** Epoch ms. */
  access_expires_at: number;
  refresh_expires_at: number;
}

/**
 * TikTok refused (invalid_grant, invalid_client, invalid_request, ...): retrying the same call will
 * not help. Only `invalid_grant` is about the user's grant; the others are about the app's
 * credentials or request (see `grantRefused`).
 */
export class OAuthRefused extends HubError {
  constructor(readonly error: string, description: string, logId?: string) {
    super(`oauth_${error}`, `TikTok refused: ${error}: ${description}${logId ? ` (log_id ${logId})` : ''}`, { retryable: false });
  }
}

/** The user's grant is gone (revoked, expired, a refresh token already used): only a new connect helps. */
export const grantRefused = (e: unknown): e is OAuthRefused => e instanceof OAuthRefused && e.error === 'invalid_grant';

const UNRESERVED = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~';

/** A code verifier (64 unreserved characters) and its challenge: TikTok wants the hex SHA-256 (Login Kit for Desktop). */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = Array.from({ length: 64 }, () => UNRESERVED[randomInt(UNRESERVED.length)]).join('');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('hex') };
}

export function authorizeUrl(c: OAuthConfig, p: { scopes: string[]; redirectUri: string; state: string; challenge: string }): string {
  const u = new URL(c.authorizeUrl);
  u.search = new URLSearchParams({ client_key: c.clientKey, scope: p.scopes.join(','), response_type: 'code', redirect_uri: p.redirectUri, state: p.state, code_challenge: p.challenge, code_challenge_method: 'S256' }).toString();
  return u.toString();
}

async function tokenCall(c: OAuthConfig, path: string, form: Record<string, string>, signal?: AbortSignal): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await outboundFetch(`${c.baseUrl.replace(/\/$/, '')}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'cache-control': 'no-cache' }, body: new URLSearchParams(form), signal: signal ?? AbortSignal.timeout(15_000) });
  } catch (e) {
    throw new HubError('oauth_unavailable', `TikTok ${path} unreachable: ${(e as Error).message}`, { retryable: true, cause: e });
  }
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    // not JSON: judged by the status below
  }
  // A 5xx or 429 is TikTok (or a proxy) unable to answer now, whatever body came with it; the
  // call may go through later. Otherwise TikTok's error body decides, with any status.
  if (res.status >= 500 || res.status === 429) throw new HubError('oauth_unavailable', `TikTok ${path} answered ${res.status}${typeof body.error === 'string' ? ` ${body.error}` : ''}`, { retryable: true });
  if (typeof body.error === 'string' && body.error) throw new OAuthRefused(body.error, String(body.error_description ?? ''), body.log_id as string | undefined);
  if (!res.ok) throw new OAuthRefused(`http_${res.status}`, text.slice(0, 200));
  return body;
}

function tokenSet(b: Record<string, unknown>, now = Date.now()): TokenSet {
  for (const f of ['access_token', 'refresh_token', 'open_id'] as const) if (typeof b[f] !== 'string' || !b[f]) throw new HubError('oauth_invalid_response', `TikTok's token answer has no ${f}`, { retryable: true });
  const t: TokenSet = {
    access_token: b.access_token as string,
    refresh_token: b.refresh_token as string,
    open_id: b.open_id as string,
    scope: String(b.scope ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    access_expires_at: now + Number(b.expires_in ?? 0) * 1000,
    refresh_expires_at: now + Number(b.refresh_expires_in ?? 0) * 1000,
  };
  registerTokens(t);
  return t;
}

/** How long a token is still masked after its expiry (clocks differ; a request sent just before it). */
const EXPIRED_GRACE_MS = 15 * 60_000;

/**
 * Masks a user's tokens until they expire (shared/redact.ts): rotated every 2 hours, they would
 * otherwise pile up in the masking list for as long as the service runs.
 */
export function registerTokens(t: Pick<TokenSet, 'access_token' | 'refresh_token' | 'access_expires_at' | 'refresh_expires_at'>): void {
  registerSecret(t.access_token, { until: t.access_expires_at + EXPIRED_GRACE_MS });
  registerSecret(t.refresh_token, { until: t.refresh_expires_at + EXPIRED_GRACE_MS });
}

export async function exchangeCode(c: OAuthConfig, p: { code: string; verifier: string; redirectUri: string }): Promise<TokenSet> {
  return tokenSet(await tokenCall(c, '/v2/oauth/token/', { client_key: c.clientKey, client_secret: c.clientSecret, code: p.code, grant_type: 'authorization_code', redirect_uri: p.redirectUri, code_verifier: p.verifier }));
}

export async function refreshTokens(c: OAuthConfig, refreshToken: string): Promise<TokenSet> {
  return tokenSet(await tokenCall(c, '/v2/oauth/token/', { client_key: c.clientKey, client_secret: c.clientSecret, grant_type: 'refresh_token', refresh_token: refreshToken }));
}

export async function clientToken(c: OAuthConfig): Promise<{ token: string; expiresAt: number }> {
  const b = await tokenCall(c, '/v2/oauth/token/', { client_key: c.clientKey, client_secret: c.clientSecret, grant_type: 'client_credentials' });
  if (typeof b.access_token !== 'string') throw new HubError('oauth_invalid_response', "TikTok's client token answer has no access_token", { retryable: true });
  const expiresAt = Date.now() + Number(b.expires_in ?? 7200) * 1000;
  registerSecret(b.access_token, { until: expiresAt + EXPIRED_GRACE_MS });
  return { token: b.access_token, expiresAt };
}


import type { IncomingMessage, ServerResponse } from 'node:http';
import { challengeOf, json, oauthError, rand, type SimState } from './state.ts';

export interface OAuthCounters {
  /** Successful refresh_token grants per open_id. */
  refreshes: Map<string, number>;
  /** Every refresh attempt (ok or not) per open_id, with the time. */
  refreshLog: { open_id: string; at: number; ok: boolean }[];
  /** Open ids whose next refreshes fail (invalid_grant). */
  failRefresh: Set<string>;
  revoked: string[];
}

/**
 * GET /v2/auth/authorize/ (the page a user signs in and consents on; here it answers at once as
 * `state.consent` says), POST /v2/oauth/token/ (authorization_code with PKCE, refresh_token,
 * client_credentials) and POST /v2/oauth/revoke/.
 */
export function authorize(s: SimState, url: URL, res: ServerResponse): void {
  const q = Object.fromEntries(url.searchParams);
  const back = (params: Record<string, string>) => {
    const target = new URL(q.redirect_uri!);
    for (const [k, v] of Object.entries(params)) target.searchParams.set(k, v);
    res.writeHead(302, { location: target.toString() }).end();
  };
  if (!q.client_key || !s.clients.has(q.client_key)) return void res.writeHead(400, { 'content-type': 'text/plain' }).end('client_key is invalid');
  if (!q.redirect_uri || !/^https?:\/\//.test(q.redirect_uri)) return void res.writeHead(400, { 'content-type': 'text/plain' }).end('redirect_uri is invalid');
  if (q.response_type !== 'code') return back({ error: 'unsupported_response_type', error_description: 'response_type must be code', state: q.state ?? '' });
  // Desktop PKCE: S256 only, the challenge being the hex SHA-256 of the verifier.
  if (q.code_challenge_method !== 'S256' || !/^[0-9a-f]{64}$/.test(q.code_challenge ?? '')) return back({ error: 'invalid_request', error_description: 'code_challenge is invalid', state: q.state ?? '' });
  const asked = (q.scope ?? '').split(',').filter(Boolean);
  if (asked.length === 0) return back({ error: 'invalid_scope', error_description: 'scope is required', state: q.state ?? '' });
  const who = s.consent;
  if (!who || !s.users.has(who.open_id)) return void res.writeHead(409, { 'content-type': 'text/plain' }).end('simulator: nobody is signed in (call consent())');
  if (who.deny) return back({ error: 'access_denied', error_description: 'The user denied the request', state: q.state ?? '' });
  const scopes = asked.filter((x) => !who.scopes || who.scopes.includes(x));
  const code = rand(20);
  s.codes.set(code, { client_key: q.client_key, open_id: who.open_id, scopes, redirect_uri: q.redirect_uri, challenge: q.code_challenge!, exp: Date.now() + 5 * 60_000, used: false });
  back({ code, scopes: scopes.join(','), state: q.state ?? '' });
}

export function token(s: SimState, form: URLSearchParams, res: ServerResponse, c: OAuthCounters, ttl: { access: number; refresh: number; client: number; nextGrant: number | null }): void {
  const f = Object.fromEntries(form);
  const client = f.client_key ? s.clients.get(f.client_key) : undefined;
  if (!f.client_key) return oauthError(res, 'invalid_request', 'Client key is missed in request.');
  if (!f.client_secret) return oauthError(res, 'invalid_request', 'Client secret is missed in request.');
  if (!client || client.secret !== f.client_secret) return oauthError(res, 'invalid_client', 'Client key or secret is incorrect.');

  if (f.grant_type === 'authorization_code') {
    const code = s.codes.get(f.code ?? '');
    if (!code || code.used || code.exp < Date.now() || code.client_key !== f.client_key) return oauthError(res, 'invalid_grant', 'Authorization code is expired.');
    if (code.redirect_uri !== f.redirect_uri) return oauthError(res, 'invalid_grant', 'Redirect uri does not match.');
    code.used = true;
    if (!f.code_verifier || challengeOf(f.code_verifier) !== code.challenge) return oauthError(res, 'invalid_request', 'Code verifier or code challenge is invalid.');
    const grant = { id: rand(8), client_key: f.client_key, open_id: code.open_id, scopes: code.scopes, refresh_token: `rft.${rand(24)}`, refresh_expires_at: Date.now() + ttl.refresh * 1000, revoked: false };
    s.grants.set(grant.id, grant);
    s.refreshTokens.set(grant.refresh_token, grant.id);
    const access = ttl.nextGrant ?? ttl.access;
    ttl.nextGrant = null;
    return json(res, 200, tokenBody(s, grant, { access }));
  }
  if (f.grant_type === 'refresh_token') {
    const grant = s.grants.get(s.refreshTokens.get(f.refresh_token ?? '') ?? '');
    const good = grant && !grant.revoked && grant.client_key === f.client_key && grant.refresh_expires_at > Date.now() && !c.failRefresh.has(grant.open_id);
    if (grant) c.refreshLog.push({ open_id: grant.open_id, at: Date.now(), ok: Boolean(good) });
    if (!grant || !good) return oauthError(res, 'invalid_grant', 'Refresh token is invalid or expired.');
    c.refreshes.set(grant.open_id, (c.refreshes.get(grant.open_id) ?? 0) + 1);
    // Refresh tokens are rotated: a new one in every answer, and the one sent stops working.
    s.refreshTokens.delete(grant.refresh_token);
    grant.refresh_token = `rft.${rand(24)}`;
    s.refreshTokens.set(grant.refresh_token, grant.id);
    return json(res, 200, tokenBody(s, grant, ttl));
  }
  if (f.grant_type === 'client_credentials') {
    const access = `clt.${rand(24)}`;
    s.clientTokens.set(access, { client_key: f.client_key, exp: Date.now() + ttl.client * 1000 });
    return json(res, 200, { access_token: access, expires_in: ttl.client, token_type: 'Bearer' });
  }
  oauthError(res, 'unsupported_grant_type', `grant_type ${f.grant_type ?? '(none)'} is not supported`);
}

function tokenBody(s: SimState, grant: { open_id: string; scopes: string[]; refresh_token: string; refresh_expires_at: number } & Parameters<SimState['issueAccess']>[0], ttl: { access: number }) {
  return {
    access_token: s.issueAccess(grant, ttl.access),
    expires_in: ttl.access,
    open_id: grant.open_id,
    refresh_expires_in: Math.max(0, Math.floor((grant.refresh_expires_at - Date.now()) / 1000)),
    refresh_token: grant.refresh_token,
    scope: grant.scopes.join(','),
    token_type: 'Bearer',
  };
}

/** Revoking a user's access token ends the whole grant (its refresh token too). */
export function revoke(s: SimState, form: URLSearchParams, res: ServerResponse, c: OAuthCounters): void {
  const f = Object.fromEntries(form);
  const client = f.client_key ? s.clients.get(f.client_key) : undefined;
  if (!client || client.secret !== f.client_secret) return oauthError(res, 'invalid_client', 'Client key or secret is incorrect.');
  const t = s.accessTokens.get(f.token ?? '');
  const g = t ? s.grants.get(t.grant) : undefined;
  if (g) {
    g.revoked = true;
    c.revoked.push(g.open_id);
  }
  res.writeHead(200).end();
}

export const readForm = async (req: IncomingMessage) => {
  const chunks: Buffer[] = [];
  for await (const ch of req) chunks.push(ch as Buffer);
  return Buffer.concat(chunks);
};

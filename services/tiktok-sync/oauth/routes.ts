import type { Express, Request, Response } from 'express';
import { auditRecord } from '../../../shared/commands/audit.ts';
import { describeError, HubError } from '../../../shared/errors.ts';
import { isWorkspaceId } from '../../../shared/ids.ts';
import type { Logger } from '../../../shared/logger.ts';
import { authorizeUrl, exchangeCode, OAuthRefused, pkcePair, type OAuthConfig } from '../api/oauth.ts';
import { SOURCE } from '../events.ts';
import { completeConnect, type ConnectDeps } from './connect.ts';
import { openState, sealState } from './state-token.ts';
import type { ConnectGrants } from '../../../shared/security/connect-grant.ts';
import { browserBinding } from '../../../shared/security/oauth-state.ts';
import type { AccountClaims, Claim } from '../../../shared/security/oauth-claim.ts';
import { linkKey } from '../../../shared/links.ts';

export interface RouteDeps extends ConnectDeps {
  logger: Logger;
  oauth: () => OAuthConfig | null;
  scopes: string[];
  publicBaseUrl: string;
  stateTtlMs: number;
  /** Connect links the hub issued (`grant`): an admin's `ionflux connect tiktok`, or this service's own messages to the workspace. */
  grants: ConnectGrants;
  /** Who is connecting which account right now, across instances (shared/security/oauth-claim.ts). */
  claims: AccountClaims;
}

/** Why a callback that lost its account's claim is refused: the other connection is for this workspace, another one, or unknown. */
function connectUnderWay(ws: string, holder: Claim | undefined): string {
  if (!holder) return 'another connection of this TikTok account was under way at the same moment; nothing was stored for this one. Check the connection, or open the connect link again.';
  if (holder.workspaceId === ws) return `another connection of this TikTok account to ${ws} is under way (was the link opened twice?); that one decides. Nothing was stored for this one.`;
  return `this TikTok account is being connected to another workspace (${holder.workspaceId}) right now; nothing was stored for this one.`;
}

const text = (res: Response, status: number, body: string) => void res.status(status).type('text/plain; charset=utf-8').set('cache-control', 'no-store').send(`${body}\n`);

/**
 * GET /tiktok/connect?workspace=<id>&grant=<grant>: 302 to TikTok's authorize page with a fresh
 * PKCE pair and a sealed, expiring state; only for a link the hub issued for that workspace
 * (shared/security/connect-grant.ts), 403 otherwise, since whoever completes it binds their account
 * to the workspace. GET /tiktok/callback: checks the state, exchanges the code (with the
 * verifier) at /v2/oauth/token/, claims the account the exchange named (409 while another
 * connection of it is under way, here or on another instance) and completes the connection.
 * Every refusal is a 4xx naming why.
 */
export function mountOAuthRoutes(app: Express, d: RouteDeps): void {
  const redirectUri = `${d.publicBaseUrl}/tiktok/callback`;
  const browser = browserBinding('ionflux_tiktok', '/tiktok/callback', d.publicBaseUrl.startsWith('https:'));

  app.get('/tiktok/connect', async (req: Request, res: Response) => {
    const cfg = d.oauth();
    if (!cfg) return text(res, 503, 'TikTok is not configured on this hub: set TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET for tiktok-sync.');
    const ws = typeof req.query.workspace === 'string' ? req.query.workspace : '';
    if (!isWorkspaceId(ws)) return text(res, 400, 'workspace must be a workspace id (lowercase letters, digits, _ and -).');
    const granted = await d.grants.check(typeof req.query.grant === 'string' ? req.query.grant : undefined, ws).catch(() => null);
    if (!granted) return text(res, 503, 'The hub could not check this connect link (secret store unreachable); try again.');
    if (!granted.ok) return text(res, 403, `This connect link ${granted.reason === 'expired' ? 'has expired' : 'was not issued by the hub for this workspace'}; an admin gets one with: ionflux connect tiktok --workspace ${ws}`);
    const { verifier, challenge } = pkcePair();
    const state = sealState(cfg.clientSecret, { workspaceId: ws, verifier, browser: browser.begin(res, d.stateTtlMs), expiresAt: Date.now() + d.stateTtlMs });
    res.set('cache-control', 'no-store').redirect(302, authorizeUrl(cfg, { scopes: d.scopes, redirectUri, state, challenge }));
  });

  app.get('/tiktok/callback', async (req: Request, res: Response) => {
    const cfg = d.oauth();
    if (!cfg) return text(res, 503, 'TikTok is not configured on this hub.');
    const q = req.query as Record<string, string | undefined>;
    const opened = openState(cfg.clientSecret, q.state);
    if (!opened.ok) return text(res, 400, `This connect link is ${opened.reason === 'expired' ? 'expired' : 'not valid'}; get a new link with: ionflux connect tiktok --workspace <workspace>.`);
    if (!browser.check(req, res, opened.state.browser)) return text(res, 400, 'This callback did not come back to the browser that opened the connect link; open the link again and finish it in the same browser.');
    const ws = opened.state.workspaceId;
    const failed = async (status: number, why: string) => {
      const audit = await auditRecord(d.codec, SOURCE, { kind: 'action_failed', workspace_id: ws, connector: 'tiktok', action: 'connect', actor: 'oauth-callback', outcome: 'refused', detail: why }).catch(() => null);
      if (audit) await d.bus.publish(audit).catch(() => undefined);
      text(res, status, `TikTok was not connected to ${ws}: ${why}`);
    };
    // TikTok's own words, kept short: the query is whatever the browser was sent back with.
    if (q.error) return failed(400, `TikTok answered ${q.error.slice(0, 64)}${q.error_description ? `: ${q.error_description.slice(0, 200)}` : ''}`);
    if (!q.code) return failed(400, 'the callback carried no code');
    let tokens;
    try {
      tokens = await exchangeCode(cfg, { code: q.code, verifier: opened.state.verifier, redirectUri });
    } catch (e) {
      if (e instanceof OAuthRefused) return failed(400, e.message);
      d.logger.warn({ error: describeError(e) }, 'code exchange failed');
      return text(res, 502, `TikTok could not be reached to finish connecting ${ws}; try again.`);
    }
    try {
      // One connection of an account at a time, whichever instances its callbacks reach: the
      // callback that claims the account goes on, the others are refused (their unused tokens
      // are not revoked, for the reason below, and expire in 24 h).
      await d.claims.claim(linkKey('tiktok', tokens.open_id), ws, async (claimed) => {
        if (!claimed.won) return failed(409, connectUnderWay(ws, claimed.holder));
        const c = await completeConnect(d, ws, tokens, 'oauth-callback', claimed.held);
        d.logger.info({ workspace: ws, open_id: c.open_id, scope: c.scope }, 'tiktok account connected');
        const missing = d.scopes.filter((s) => !c.scope.includes(s));
        text(res, 200, `TikTok account ${c.open_id} is connected to workspace ${ws}.${missing.length ? ` Not granted: ${missing.join(', ')} (actions needing them will say so).` : ''}`);
      });
    } catch (e) {
      // No revoke here: TikTok's revoke disconnects the app from the account altogether, which
      // would cut off the workspace the account is connected to. The unused token expires in 24 h.
      if (e instanceof HubError && (e.code === 'account_linked_elsewhere' || e.code === 'claim_lost')) return failed(409, e.message);
      d.logger.error({ err: e, workspace: ws }, 'storing the TikTok connection failed');
      text(res, 503, `The hub could not store the connection for ${ws}; try again.`);
    }
  });
}

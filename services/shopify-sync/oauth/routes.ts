import type { Shopify } from '@shopify/shopify-api';
import { Cookies, type NormalizedRequest, type NormalizedResponse } from '@shopify/shopify-api/runtime';
import type { Express, Request, Response } from 'express';
import { auditRecord } from '../../../shared/commands/audit.ts';
import { describeError, HubError } from '../../../shared/errors.ts';
import { isWorkspaceId } from '../../../shared/ids.ts';
import { rewriteShopUrl } from '../api/sdk.ts';
import { SOURCE } from '../events.ts';
import { storedFromSession } from '../tokens/access.ts';
import { checkShopFree, completeInstall, type InstallDeps } from './install.ts';
import { openState, sealState } from './state-token.ts';
import type { ConnectGrants } from '../../../shared/security/connect-grant.ts';
import { browserBinding } from '../../../shared/security/oauth-state.ts';
import type { AccountClaims, Claim } from '../../../shared/security/oauth-claim.ts';
import { linkKey } from '../../../shared/links.ts';

export interface RouteDeps extends InstallDeps {
  shopify: () => Shopify | null;
  apiSecret: () => string | undefined;
  scopes: string[];
  publicBaseUrl: string;
  adminBaseUrl?: string;
  stateTtlMs: number;
  /** Install links the hub issued (`grant`): an admin's `ionflux connect shopify`, or this service's own messages to the workspace. */
  grants: ConnectGrants;
  /** Who is installing which shop right now, across instances (shared/security/oauth-claim.ts). */
  claims: AccountClaims;
}

const STATE_COOKIE = 'shopify_app_state';

/** Why a callback that lost its shop's claim is refused: the other install is for this workspace, another one, or unknown. */
function installUnderWay(shop: string, ws: string, holder: Claim | undefined): string {
  if (!holder) return `another install of ${shop} was under way at the same moment; nothing was stored for this one. Check the shop's connection, or open the install link again.`;
  if (holder.workspaceId === ws) return `another install of ${shop} for ${ws} is under way (was the link opened twice?); that one decides. Nothing was stored for this one.`;
  return `${shop} is being installed for another workspace (${holder.workspaceId}) right now; nothing was stored for this one.`;
}
const text = (res: Response, status: number, body: string) => void res.status(status).type('text/plain; charset=utf-8').set('cache-control', 'no-store').send(`${body}\n`);

/**
 * The state this service sealed and checked is handed to the SDK's callback as the signed state
 * cookie it expects (signed with the SDK's own cookie code), so `shopify.auth.callback` checks
 * the query HMAC and the state again and exchanges the code: the exchange is the SDK's.
 */
async function sdkCallbackRequest(req: Request, secret: string, state: string): Promise<NormalizedRequest> {
  const scratch: NormalizedResponse = { statusCode: 200, statusText: 'OK', headers: {} };
  const jar = new Cookies({ headers: {}, method: 'GET', url: '/' }, scratch, { keys: [secret] });
  await jar.setAndSign(STATE_COOKIE, state);
  const cookie = Object.values(jar.outgoingCookieJar).map((c) => `${c.name}=${c.value}`).join('; ');
  return { method: 'GET', url: req.originalUrl, headers: { ...req.headers, cookie } as NormalizedRequest['headers'] };
}

/**
 * GET /shopify/install?shop=<shop>.myshopify.com&workspace=<id>&grant=<grant>: 302 to the shop's
 * /admin/oauth/authorize with client_id, scope, redirect_uri and a sealed, expiring state. Only for
 * a link the hub issued for that workspace (shared/security/connect-grant.ts): 403 otherwise, since
 * whoever completes it binds their shop to the workspace.
 * GET /shopify/callback: the query HMAC (Shopify's, keyed with the API secret) and the state are
 * checked before anything else; a bad one answers 400 and stores nothing. Then the callback claims
 * the shop (409 while another install of it is under way, here or on another instance), the SDK
 * exchanges the code for an expiring offline token and the install completes (install.ts).
 */
export function mountOAuthRoutes(app: Express, d: RouteDeps): void {
  const redirectUri = `${d.publicBaseUrl}/shopify/callback`;
  const browser = browserBinding('ionflux_shopify', '/shopify/callback', d.publicBaseUrl.startsWith('https:'));

  app.get('/shopify/install', async (req: Request, res: Response) => {
    const shopify = d.shopify();
    const secret = d.apiSecret();
    if (!shopify || !secret) return text(res, 503, 'Shopify is not configured on this hub: set SHOPIFY_API_KEY and SHOPIFY_API_SECRET for shopify-sync.');
    const ws = typeof req.query.workspace === 'string' ? req.query.workspace : '';
    if (!isWorkspaceId(ws)) return text(res, 400, 'workspace must be a workspace id (lowercase letters, digits, _ and -).');
    const shop = typeof req.query.shop === 'string' ? shopify.utils.sanitizeShop(req.query.shop) : null;
    if (!shop) return text(res, 400, 'shop must be a <shop>.myshopify.com domain.');
    const granted = await d.grants.check(typeof req.query.grant === 'string' ? req.query.grant : undefined, ws).catch(() => null);
    if (!granted) return text(res, 503, 'The hub could not check this install link (secret store unreachable); try again.');
    if (!granted.ok) return text(res, 403, `This install link ${granted.reason === 'expired' ? 'has expired' : 'was not issued by the hub for this workspace'}; an admin gets one with: ionflux connect shopify --workspace ${ws} --shop ${shop}`);
    const state = sealState(secret, { workspaceId: ws, shop, browser: browser.begin(res, d.stateTtlMs), expiresAt: Date.now() + d.stateTtlMs });
    const q = new URLSearchParams({ client_id: shopify.config.apiKey, scope: d.scopes.join(','), redirect_uri: redirectUri, state });
    res.set('cache-control', 'no-store').redirect(302, rewriteShopUrl(`https://${shop}/admin/oauth/authorize?${q}`, d.adminBaseUrl));
  });

  app.get('/shopify/callback', async (req: Request, res: Response) => {
    const shopify = d.shopify();
    const secret = d.apiSecret();
    if (!shopify || !secret) return text(res, 503, 'Shopify is not configured on this hub.');
    const query = Object.fromEntries(Object.entries(req.query).filter((e): e is [string, string] => typeof e[1] === 'string'));
    const signed = await shopify.utils.validateHmac(query).catch(() => false);
    if (!signed) return text(res, 400, 'This callback is not signed by Shopify (hmac missing, wrong or too old); start the install again.');
    const opened = openState(secret, query.state);
    if (!opened.ok) return text(res, 400, `This install link is ${opened.reason === 'expired' ? 'expired' : 'not valid'}; get a new link with: ionflux connect shopify --workspace <workspace> --shop <shop>.`);
    const { workspaceId: ws, shop } = opened.state;
    if (query.shop !== shop) return text(res, 400, 'The callback is for another shop than the install began with; start again.');
    if (!browser.check(req, res, opened.state.browser)) return text(res, 400, 'This callback did not come back to the browser that opened the install link; open the link again and finish it in the same browser.');
    const failed = async (status: number, why: string) => {
      const audit = await auditRecord(d.codec, SOURCE, { kind: 'action_failed', workspace_id: ws, connector: 'shopify', action: 'install', actor: 'oauth-callback', outcome: 'refused', detail: why }).catch(() => null);
      if (audit) await d.bus.publish(audit).catch(() => undefined);
      text(res, status, `Shopify was not installed for ${ws}: ${why}`);
    };
    if (!query.code) return failed(400, 'the callback carried no code');
    try {
      // One install of a shop at a time, whichever instances its callbacks reach: the callback
      // that claims the shop goes on, the others are refused before exchanging their code.
      await d.claims.claim(linkKey('shopify', shop), ws, async (claimed) => {
        if (!claimed.won) return failed(409, installUnderWay(shop, ws, claimed.holder));
        await checkShopFree(d, ws, shop);
        let token;
        try {
          // The SDK's cookies (its own session cookie) are not for this hub's browser: a scratch response takes them.
          const { session } = await shopify.auth.callback({ rawRequest: await sdkCallbackRequest(req, secret, query.state!), rawResponse: { setHeader: () => undefined }, expiring: true } as never);
          token = storedFromSession(session, Date.now());
        } catch (e) {
          const status = (e as { response?: { code?: number } }).response?.code;
          if (status && status >= 400 && status < 500) return failed(400, `Shopify refused the code (HTTP ${status})`);
          d.logger.warn({ error: describeError(e), shop }, 'code exchange failed');
          return text(res, 502, `Shopify could not be reached to finish installing ${shop}; try again.`);
        }
        const { connection: c, webhooks } = await completeInstall(d, ws, token, 'oauth-callback', claimed.held);
        d.logger.info({ workspace: ws, shop: c.shop, scope: c.scope, webhooks: webhooks.registered.length, webhooks_failed: webhooks.failed }, 'shopify app installed');
        const missing = d.scopes.filter((s) => !c.scope.includes(s));
        text(res, 200, `Shopify shop ${c.shop} is installed for workspace ${ws}.${missing.length ? ` Not granted: ${missing.join(', ')}.` : ''}`);
      });
    } catch (e) {
      if (e instanceof HubError && e.code === 'shop_linked_elsewhere') return failed(409, e.message);
      if (e instanceof HubError && e.code === 'claim_lost') return failed(409, e.message);
      d.logger.error({ err: e, workspace: ws }, 'storing the Shopify installation failed');
      text(res, 503, `The hub could not store the installation for ${ws}; try again.`);
    }
  });
}

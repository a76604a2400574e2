import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { actualCost, parseOperation, requestedCost } from './cost.ts';
import { execute, type Json } from './graphql.ts';
import { seedShop, token, type SimGrant, type SimShop } from './state.ts';

/**
 * A local stand-in for Shopify, written from Shopify's reference (SOURCES.md): the OAuth
 * authorize redirect (signed query: hex HMAC-SHA256 of the sorted parameters) and the
 * access_token endpoint (authorization code with `expiring=1`, refresh_token grant, rotating
 * refresh tokens, `expires_in` / `refresh_token_expires_in`); the GraphQL Admin API at
 * /admin/api/<version>/graphql.json with X-Shopify-Access-Token, its cost-based throttle (cost.ts;
 * a bucket of 1000 points refilled at 50/s per app and shop, THROTTLED errors and
 * `extensions.cost.throttleStatus` on every answer, MAX_COST_EXCEEDED past the single-query
 * limit of 1000), the subset in graphql.ts and scripted INTERNAL_SERVER_ERROR answers; and signed
 * webhooks. Requests arrive as `<base>/<shop>/<path>` (README.md: the SHOPIFY_ADMIN_BASE_URL convention).
 */
export interface ShopifySimulator {
  url: string;
  apiKey: string;
  apiSecret: string;
  shops: Map<string, SimShop>;
  grants: SimGrant[];
  /** Every request: method, path, shop, GraphQL root field, answer status, whether throttled. */
  requests: { method: string; path: string; shop: string; root: string | null; variables?: Json; status: number; throttled: boolean; at: number; cost?: { requested: number; actual: number | null } }[];
  oauth: { authorizations: number; codeExchanges: number; refreshes: number };
  addShop(domain?: string, counts?: Parameters<typeof seedShop>[1]): SimShop;
  /** GraphQL requests to `root` (e.g. 'themePublish'), answered 200 and not throttled. */
  count(root: string): number;
  /** Every GraphQL answer (of `shop` only, when given) takes this long from now on (0 to stop). */
  delay(ms: number, shop?: string): void;
  /** A live access token of `shop`, as a finished install holds one (for tests that need no OAuth). */
  accessToken(shop: string): string;
  /** The access token of the next code exchange lives this long. */
  nextGrantAccessTtlS(seconds: number): void;
  /**
   * The next GraphQL request to `root` (of `shop` only, when given) is answered Shopify's
   * INTERNAL_SERVER_ERROR (HTTP 200); with `applied` it runs first, and what it did stays done.
   */
  internalError(root: string, o?: { shop?: string; applied?: boolean }): void;
  /**
   * The next `times` (1) refresh grants of `shop` are answered HTTP 429 with `Retry-After`
   * (seconds, 2.0 by default) and a REST-style `errors` body, as Shopify rate-limits a client; the
   * refresh token stays good.
   */
  rateLimitRefresh(shop: string, o?: { times?: number; retryAfterS?: number }): void;
  /** Every access token of the shop stops working (Shopify's 401), refresh tokens still do. */
  expireAccessTokens(shop: string): void;
  /** The next bulk result file served sends its first `afterLines` lines, then the rest only once `release` is called (a slow download). */
  holdBulkResult(afterLines: number): { release(): void };
  /** Whether `accessToken` is a live token of `shop`. */
  tokenIsLive(shop: string, accessToken: string): boolean;
  /** POSTs a webhook signed like Shopify's (X-Shopify-Hmac-Sha256, base64, with the app's secret). */
  sendWebhook(url: string, topic: string, shop: string, body: unknown, webhookId?: string): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

export interface SimOptions {
  accessTtlS?: number;
  refreshTtlS?: number;
  maximumAvailable?: number;
  restoreRate?: number;
  /** Shopify's single-query limit (1000 points on every plan); lower only to see what a client does past it. */
  singleQueryMaxCost?: number;
  bulkDelayMs?: number;
}

/** How long a used refresh token may be retried, from its first use, while its replacement is unused (Shopify: 30 days). */
const REFRESH_RECOVERY_MS = 30 * 86_400_000;

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
};
const readBody = (req: IncomingMessage) => new Promise<string>((resolve, reject) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => resolve(Buffer.concat(chunks).toString()));
  req.on('error', reject);
});
/** Shopify's answer to a query priced over the single-query limit (SOURCES.md): refused before it runs. */
const maxCostExceeded = (cost: number, maxCost: number) => ({
  errors: [{
    message: `Query cost is ${cost}, which exceeds the single query max cost limit (${maxCost}). See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the cost of a query is calculated. To query larger amounts of data with fewer limits, bulk operations should be used instead. See https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage details. `,
    extensions: { code: 'MAX_COST_EXCEEDED', cost, maxCost, documentation: 'https://shopify.dev/api/usage/rate-limits' },
  }],
});

/** Shopify's INTERNAL_SERVER_ERROR, answered (HTTP 200) instead of a 500 in most circumstances (SOURCES.md). */
function internalErrorAnswer() {
  const requestId = randomUUID();
  return { errors: [{ message: `Internal error. Looks like something went wrong on our end.\nRequest ID: ${requestId} (include this in support requests).`, extensions: { code: 'INTERNAL_SERVER_ERROR', requestId } }] };
}

/** Shopify's signature of an OAuth redirect: hex HMAC-SHA256 of `k=v` pairs sorted by key, joined by `&`. */
export const signQuery = (secret: string, params: Record<string, string>) => createHmac('sha256', secret).update(Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join('&')).digest('hex');

export async function startShopifySimulator(o: SimOptions = {}): Promise<ShopifySimulator> {
  const apiKey = `key_${randomBytes(8).toString('hex')}`;
  const apiSecret = `shpss_${randomBytes(16).toString('hex')}`;
  const max = o.maximumAvailable ?? 1000;
  const restore = o.restoreRate ?? 50;
  const singleMax = o.singleQueryMaxCost ?? 1000;
  const failing: { root: string; shop?: string; applied: boolean }[] = [];
  const refreshLimits = new Map<string, { times: number; retryAfterS: number }>();
  const shops = new Map<string, SimShop>();
  const grants: SimGrant[] = [];
  const codes = new Map<string, { shop: string; scope: string; used: boolean; at: number }>();
  const requests: ShopifySimulator['requests'] = [];
  const oauth = { authorizations: 0, codeExchanges: 0, refreshes: 0 };
  const counters: Record<string, number> = {};
  let delayMs = 0;
  const shopDelay = new Map<string, number>();
  let nextTtl: number | null = null;
  let resultHold: { afterLines: number; released: Promise<void> } | null = null;
  let url = '';

  const issue = (shop: string, scope: string, ttlS: number): SimGrant => {
    const g: SimGrant = { shop, scope, accessToken: token('shpat'), refreshToken: token('shprt'), accessExpiresAt: Date.now() + ttlS * 1000, refreshExpiresAt: Date.now() + (o.refreshTtlS ?? 90 * 86400) * 1000, revoked: false };
    grants.push(g);
    return g;
  };
  const grantAnswer = (g: SimGrant) => ({ access_token: g.accessToken, scope: g.scope, expires_in: Math.round((g.accessExpiresAt - Date.now()) / 1000), refresh_token: g.refreshToken, refresh_token_expires_in: Math.round((g.refreshExpiresAt - Date.now()) / 1000) });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://sim');
    const bulkFile = /^\/bulk-results\/([^/]+)\/(\d+)\.jsonl$/.exec(u.pathname);
    if (bulkFile) {
      const b = shops.get(bulkFile[1]!)?.bulk.find((x) => x.id === Number(bulkFile[2]));
      if (!b || b.status !== 'COMPLETED') return json(res, 404, { error: 'not found' });
      res.writeHead(200, { 'content-type': 'application/jsonl' });
      const text = (lines: string[]) => lines.map((l) => `${l}\n`).join('');
      const hold = resultHold;
      resultHold = null;
      if (hold) {
        // A large file arriving slowly: its first lines, then the rest once the test releases it.
        res.write(text(b.lines.slice(0, hold.afterLines)));
        await hold.released;
      }
      return void res.end(text(b.lines.slice(hold?.afterLines ?? 0)));
    }
    const m = /^\/([a-z0-9][a-z0-9-]*\.myshopify\.com)(\/.*)$/.exec(u.pathname);
    const shop = m ? shops.get(m[1]!) : undefined;
    if (!m || !shop) return json(res, 404, { errors: 'Not Found' });
    const path = m[2]!;
    const log = (status: number, root: string | null = null, throttled = false, variables?: Json, cost?: { requested: number; actual: number | null }) => requests.push({ method: req.method ?? 'GET', path, shop: shop.domain, root, variables, status, throttled, at: Date.now(), ...(cost ? { cost } : {}) });

    if (req.method === 'GET' && path === '/admin/oauth/authorize') {
      const q = Object.fromEntries(u.searchParams);
      if (q.client_id !== apiKey) { log(400); return json(res, 400, { error: 'invalid_request', error_description: 'Oauth error invalid_request: The client_id is not valid' }); }
      if (!q.redirect_uri || !q.state) { log(400); return json(res, 400, { error: 'invalid_request', error_description: 'The redirect_uri and state are required' }); }
      oauth.authorizations++;
      const code = randomBytes(16).toString('hex');
      codes.set(code, { shop: shop.domain, scope: q.scope ?? '', used: false, at: Date.now() });
      const params: Record<string, string> = { code, host: Buffer.from(`admin.shopify.com/store/${shop.name}`).toString('base64url'), shop: shop.domain, state: q.state, timestamp: String(Math.floor(Date.now() / 1000)) };
      const back = new URL(q.redirect_uri);
      for (const [k, v] of Object.entries({ ...params, hmac: signQuery(apiSecret, params) })) back.searchParams.set(k, v);
      log(302);
      res.writeHead(302, { location: back.href });
      return void res.end();
    }

    if (req.method === 'POST' && path === '/admin/oauth/access_token') {
      const raw = await readBody(req);
      const b = (req.headers['content-type'] ?? '').includes('json') ? (JSON.parse(raw || '{}') as Record<string, string>) : Object.fromEntries(new URLSearchParams(raw));
      if (b.client_id !== apiKey || b.client_secret !== apiSecret) { log(401); return json(res, 401, { error: 'invalid_client', error_description: 'Client authentication failed' }); }
      if (b.grant_type === 'refresh_token') {
        const limited = refreshLimits.get(shop.domain);
        if (limited && limited.times-- > 0) {
          log(429);
          return json(res, 429, { errors: 'Exceeded the rate limit for this request. Please try again later.' }, { 'retry-after': limited.retryAfterS.toFixed(1) });
        }
        const g = grants.find((x) => x.refreshToken === b.refresh_token && x.shop === shop.domain && !x.revoked && !x.refreshRetired);
        const recoveryOver = g?.firstUsedAt !== undefined && Date.now() - g.firstUsedAt > REFRESH_RECOVERY_MS;
        if (!g || g.refreshExpiresAt < Date.now() || recoveryOver) { log(400); return json(res, 400, { error: 'invalid_grant', error_description: 'The refresh token is invalid or expired' }); }
        oauth.refreshes++;
        log(200);
        // A retry of a refresh token already used (its answer lost or not stored): the same replacement pair.
        if (g.replacement && !g.replacement.revoked) return json(res, 200, grantAnswer(g.replacement));
        // Refresh tokens rotate: the old access token stops working; the old refresh token is kept
        // until the replacement refresh token is used (which retires it), for at most 30 days.
        g.accessRetired = true;
        g.firstUsedAt ??= Date.now();
        if (g.replaces) g.replaces.refreshRetired = true;
        const next = issue(shop.domain, g.scope, o.accessTtlS ?? 3600);
        next.replaces = g;
        g.replacement = next;
        return json(res, 200, grantAnswer(next));
      }
      const c = b.code ? codes.get(b.code) : undefined;
      if (!c || c.used || c.shop !== shop.domain) { log(400); return json(res, 400, { error: 'invalid_request', error_description: 'The authorization code was not found or was already used' }); }
      c.used = true;
      oauth.codeExchanges++;
      const ttl = nextTtl ?? o.accessTtlS ?? 3600;
      nextTtl = null;
      const g = issue(shop.domain, c.scope, ttl);
      log(200);
      // Without expiring=1 Shopify answers a non-expiring token: the simulator only issues expiring ones.
      return json(res, 200, b.expiring === '1' ? grantAnswer(g) : { access_token: g.accessToken, scope: g.scope });
    }

    const gql = /^\/admin\/api\/(\d{4}-\d{2}|unstable)\/graphql\.json$/.exec(path);
    if (req.method === 'POST' && gql) {
      const raw = await readBody(req);
      const t = req.headers['x-shopify-access-token'];
      const g = grants.find((x) => x.accessToken === t && x.shop === shop.domain);
      if (!g || g.revoked || g.accessRetired || g.accessExpiresAt < Date.now()) { log(401); return json(res, 401, { errors: '[API] Invalid API key or access token (unrecognized login or wrong password)' }); }
      let body: { query?: string; variables?: Json };
      try { body = JSON.parse(raw) as typeof body; } catch { log(400); return json(res, 400, { errors: { query: 'Required parameter missing or invalid' } }); }
      const wait = shopDelay.get(shop.domain) ?? delayMs;
      if (wait) await new Promise((r) => setTimeout(r, wait));
      const variables = body.variables ?? {};
      const op = parseOperation(body.query ?? '', variables);
      const now = Date.now();
      shop.bucket.available = Math.min(max, shop.bucket.available + ((now - shop.bucket.at) / 1000) * restore);
      shop.bucket.at = now;
      const root = op.selection.fields[0]?.name ?? null;
      const requested = requestedCost(op);
      if (requested > singleMax) { log(200, root, false, variables); return json(res, 200, maxCostExceeded(requested, singleMax)); }
      const status = () => ({ maximumAvailable: max, currentlyAvailable: Math.floor(shop.bucket.available), restoreRate: restore });
      if (requested > shop.bucket.available) {
        log(200, root, true, variables, { requested, actual: null });
        return json(res, 200, { errors: [{ message: 'Throttled', extensions: { code: 'THROTTLED', documentation: 'https://shopify.dev/api/usage/rate-limits' } }], extensions: { cost: { requestedQueryCost: requested, actualQueryCost: null, throttleStatus: status() } } });
      }
      const ctx = { shop, version: gql[1]!, baseUrl: url, bulkDelayMs: o.bulkDelayMs ?? 300, counters };
      const scripted = failing.findIndex((x) => x.root === root && (!x.shop || x.shop === shop.domain));
      if (scripted >= 0) {
        if (failing.splice(scripted, 1)[0]!.applied) execute(ctx, op, variables);
        log(200, root, false, variables);
        return json(res, 200, internalErrorAnswer());
      }
      const r = execute(ctx, op, variables);
      const actual = actualCost(op, r.data);
      shop.bucket.available -= Math.min(requested, actual);
      log(200, root, false, variables, { requested, actual });
      const out: Json = { extensions: { cost: { requestedQueryCost: requested, actualQueryCost: actual, throttleStatus: status() } } };
      if (r.data) out.data = r.data;
      if (r.errors) out.errors = r.errors;
      return json(res, 200, out);
    }
    log(404);
    return json(res, 404, { errors: 'Not Found' });
  }

  const server = createServer((req, res) => void handle(req, res).catch((e: unknown) => json(res, 500, { errors: String(e) })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url, apiKey, apiSecret, shops, grants, requests, oauth,
    addShop(domain = `sim-${randomBytes(4).toString('hex')}.myshopify.com`, counts) {
      const s = seedShop(domain, counts);
      shops.set(domain, s);
      return s;
    },
    count: (root) => requests.filter((r) => r.root === root && r.status === 200 && !r.throttled).length,
    delay(ms, shop) { if (shop) shopDelay.set(shop, ms); else delayMs = ms; },
    accessToken: (shop) => issue(shop, '', o.accessTtlS ?? 3600).accessToken,
    nextGrantAccessTtlS(s) { nextTtl = s; },
    internalError(root, { shop, applied = false } = {}) { failing.push({ root, shop, applied }); },
    holdBulkResult(afterLines) {
      let release!: () => void;
      resultHold = { afterLines, released: new Promise<void>((r) => (release = r)) };
      return { release };
    },
    rateLimitRefresh(shop, { times = 1, retryAfterS = 2 } = {}) { refreshLimits.set(shop, { times, retryAfterS }); },
    expireAccessTokens(shop) { for (const g of grants) if (g.shop === shop) g.accessExpiresAt = Math.min(g.accessExpiresAt, Date.now() - 1); },
    tokenIsLive: (shop, t) => grants.some((g) => g.shop === shop && g.accessToken === t && !g.revoked && !g.accessRetired && g.accessExpiresAt > Date.now()),
    async sendWebhook(target, topic, shop, body, webhookId = randomBytes(12).toString('hex')) {
      const raw = JSON.stringify(body);
      const res = await fetch(target, { method: 'POST', body: raw, headers: {
        'content-type': 'application/json', 'x-shopify-topic': topic, 'x-shopify-shop-domain': shop, 'x-shopify-webhook-id': webhookId, 'x-shopify-api-version': '2026-07',
        'x-shopify-triggered-at': new Date().toISOString(), 'x-shopify-hmac-sha256': createHmac('sha256', apiSecret).update(raw).digest('base64'),
      } });
      return { status: res.status, body: await res.text() };
    },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

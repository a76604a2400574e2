import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { researchVideoQuery } from './research.ts';
import { creatorInfo, finish, init, status, upload } from './posting.ts';
import { authorize, readForm, revoke, token, type OAuthCounters } from './oauth.ts';
import { userInfo, videoList, videoQuery } from './display.ts';
import { DEFAULT_LIMITS, fail, rand, SimState, type Publish, type ResearchVideo, type SimLimits, type SimUser, type SimVideo } from './state.ts';

/**
 * A local stand-in for TikTok's v2 API, written from TikTok for Developers' reference (sources in
 * SOURCES.md beside this file): Login Kit authorize page and token endpoint with PKCE (hex
 * SHA-256 challenge), refresh (the refresh token rotated every time), client credentials and revoke; Display
 * API user info, video list and query; Research API video query; Content Posting API creator
 * info, init, chunked upload and status; the `{data, error}` envelope with TikTok's codes and
 * HTTP statuses; per-endpoint limits (one-minute sliding window, 429 rate_limit_exceeded, no
 * Retry-After: TikTok documents none); and signed webhooks sent to a URL.
 */
export interface TikTokSimulator {
  /** Base URL for TIKTOK_API_BASE_URL. */
  url: string;
  /** The authorize page, for TIKTOK_AUTHORIZE_URL. */
  authorizeUrl: string;
  clientKey: string;
  clientSecret: string;
  state: SimState;
  oauth: OAuthCounters;
  /** Method and path of every request, with the answer's status and error code. */
  requests: { method: string; path: string; at: number; status: number; token: string | null }[];
  addUser(u?: Partial<Omit<SimUser, 'videos'>> & { videos?: number | SimVideo[] }): SimUser;
  /** The next authorize-page visit signs in as this user and grants these scopes (default: all asked). */
  consent(openId: string, opts?: { scopes?: string[]; deny?: boolean }): void;
  addResearchVideos(videos: ResearchVideo[]): void;
  finishPublish(publishId: string, to: 'PUBLISH_COMPLETE' | 'FAILED', failReason?: string): Publish;
  /** The access token of the next code exchange lives this long (a token near expiry); refreshed ones get accessTtlS. */
  nextGrantAccessTtlS(seconds: number): void;
  /** Every access token of the user stops working (as if TikTok expired them early). */
  invalidateAccessTokens(openId: string): void;
  /**
   * POSTs a TikTok webhook (signed `TikTok-Signature: t=..,s=..` with the client secret, `t` now).
   * `createTime` (unix seconds, default now) is when the event happened: a retry TikTok sends
   * hours later (it retries for up to 72 h) still carries the event's own create_time.
   */
  sendWebhook(url: string, event: string, openId: string, content: Record<string, unknown>, o?: { createTime?: number }): Promise<{ status: number; body: string }>;
  count(path: string): number;
  /** Answers on `path` take this long from now on (0 to stop). */
  delay(path: string, ms: number): void;
  close(): Promise<void>;
}

export interface SimOptions {
  /** TikTok's: 2 hours. */
  accessTtlS?: number;
  /** TikTok's: 180 days. */
  refreshTtlS?: number;
  clientTokenTtlS?: number;
  limits?: Partial<SimLimits>;
  /** URL prefixes verified for PULL_FROM_URL. */
  verifiedUrlPrefixes?: string[];
  autoCompleteAfterPolls?: number | null;
  /** Whether the app may use the Research API. */
  research?: boolean;
  /** The rate-limit window of the per-minute limits (TikTok: 60 s); shorter only to keep tests short. */
  windowMs?: number;
}

export async function startTikTokSimulator(o: SimOptions = {}): Promise<TikTokSimulator> {
  const clientKey = `sim${rand(6)}`;
  const clientSecret = `simsecret-${rand(16)}`;
  const s = new SimState(new Map([[clientKey, { secret: clientSecret, research: o.research ?? true }]]), { ...DEFAULT_LIMITS, ...o.limits });
  const oauth: OAuthCounters = { refreshes: new Map(), refreshLog: [], failRefresh: new Set(), revoked: [] };
  const ttl = { access: o.accessTtlS ?? 7200, refresh: o.refreshTtlS ?? 15_552_000, client: o.clientTokenTtlS ?? 7200, nextGrant: null as number | null };
  const windowMs = o.windowMs ?? 60_000;
  const requests: TikTokSimulator['requests'] = [];
  const delays = new Map<string, number>();
  let origin = '';

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) fail(res, 'internal_error', `simulator bug: ${(e as Error).message}`);
    });
  });
  server.keepAliveTimeout = 60_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', origin);
    const raw = await readForm(req);
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? null;
    const entry = { method: req.method ?? 'GET', path: url.pathname, at: Date.now(), status: 0, token: bearer };
    requests.push(entry);
    res.on('finish', () => (entry.status = res.statusCode));
    const wait = delays.get(url.pathname);
    if (wait) await new Promise((r) => setTimeout(r, wait));
    const route = `${req.method} ${url.pathname}`;
    if (route === 'GET /v2/auth/authorize/') return authorize(s, url, res);
    if (route === 'POST /v2/oauth/token/') return token(s, new URLSearchParams(raw.toString()), res, oauth, ttl);
    if (route === 'POST /v2/oauth/revoke/') return revoke(s, new URLSearchParams(raw.toString()), res, oauth);
    if (route === 'PUT /video/') return upload(s, url, req, res, raw);

    let body: Record<string, unknown> = {};
    if (req.method === 'POST' && raw.length) {
      try {
        body = JSON.parse(raw.toString()) as Record<string, unknown>;
      } catch {
        return fail(res, 'invalid_params', 'request body is not JSON');
      }
    }
    if (route === 'POST /v2/research/video/query/') {
      const c = bearer ? s.clientTokens.get(bearer) : undefined;
      if (!c || c.exp < Date.now()) return fail(res, 'access_token_invalid');
      if (!s.clients.get(c.client_key)?.research) return fail(res, 'scope_not_authorized', 'This client is not approved for the Research API (research.data.basic).');
      if (!s.admit(`research:${c.client_key}`, s.limits.research, 86_400_000)) return fail(res, 'rate_limit_exceeded', 'The daily request limit of the Research API was exceeded.');
      return researchVideoQuery(s, url, body, res);
    }
    const g = s.grantOf(bearer);
    const limited = (name: keyof SimLimits, key: string) => !s.admit(`${name}:${key}`, s.limits[name], windowMs);
    switch (route) {
      case 'GET /v2/user/info/':
        if (!g) return fail(res, 'access_token_invalid');
        if (limited('user.info', g.client_key)) return fail(res, 'rate_limit_exceeded');
        return userInfo(s, g, url, res);
      case 'POST /v2/video/list/':
        if (!g) return fail(res, 'access_token_invalid');
        if (limited('video.list', g.client_key)) return fail(res, 'rate_limit_exceeded');
        return videoList(s, g, url, body, res);
      case 'POST /v2/video/query/':
        if (!g) return fail(res, 'access_token_invalid');
        if (limited('video.query', g.client_key)) return fail(res, 'rate_limit_exceeded');
        return videoQuery(s, g, url, body, res);
      case 'POST /v2/post/publish/creator_info/query/':
        if (!g) return fail(res, 'access_token_invalid');
        if (limited('creator_info', bearer!)) return fail(res, 'rate_limit_exceeded');
        return creatorInfo(s, g, res);
      case 'POST /v2/post/publish/video/init/':
        if (!g) return fail(res, 'access_token_invalid');
        if (limited('publish.init', bearer!)) return fail(res, 'rate_limit_exceeded');
        return init(s, g, body, res, { origin, verifiedPrefixes: o.verifiedUrlPrefixes ?? [] });
      case 'POST /v2/post/publish/status/fetch/':
        if (!g) return fail(res, 'access_token_invalid');
        if (limited('publish.status', bearer!)) return fail(res, 'rate_limit_exceeded');
        return status(s, g, body, res, o.autoCompleteAfterPolls ?? null);
      default:
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ data: {}, error: { code: 'invalid_params', message: `no route ${route}`, log_id: '' } }));
    }
  }

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let users = 0;

  return {
    url: origin,
    authorizeUrl: `${origin}/v2/auth/authorize/`,
    clientKey,
    clientSecret,
    state: s,
    oauth,
    requests,
    addUser(u = {}) {
      const n = ++users;
      const openId = u.open_id ?? `-000${rand(10)}`;
      const videos = typeof u.videos === 'number' || u.videos === undefined ? makeVideos(u.videos ?? 3, Math.floor(Date.now() / 1000) - 86_400) : u.videos;
      const user: SimUser = {
        union_id: `u${rand(10)}`, display_name: `Sim Creator ${n}`, username: `simcreator${n}${rand(2)}`, avatar_url: `https://p16-sign.tiktokcdn-us.com/avatar/${rand(6)}.jpeg`,
        bio_description: 'A creator in the simulator', is_verified: false, follower_count: 1000 * n, following_count: 10 * n, likes_count: 5000 * n,
        privacy_level_options: ['PUBLIC_TO_EVERYONE', 'MUTUAL_FOLLOW_FRIENDS', 'SELF_ONLY'],
        ...u, open_id: openId, videos,
      };
      s.users.set(openId, user);
      return user;
    },
    consent: (openId, opts = {}) => void (s.consent = { open_id: openId, ...opts }),
    nextGrantAccessTtlS: (seconds) => void (ttl.nextGrant = seconds),
    invalidateAccessTokens(openId) {
      for (const [token, t] of s.accessTokens) if (s.grants.get(t.grant)?.open_id === openId) s.accessTokens.delete(token);
    },
    addResearchVideos: (videos) => void s.research.push(...videos),
    finishPublish(publishId, to, failReason) {
      const p = s.publishes.get(publishId);
      if (!p) throw new Error(`no publish ${publishId}`);
      finish(p, to, failReason);
      return p;
    },
    async sendWebhook(url, event, openId, content, o = {}) {
      const body = JSON.stringify({ client_key: clientKey, event, create_time: o.createTime ?? Math.floor(Date.now() / 1000), user_openid: openId, content: JSON.stringify(content) });
      const t = Math.floor(Date.now() / 1000);
      const sig = createHmac('sha256', clientSecret).update(`${t}.${body}`).digest('hex');
      const r = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'TikTok-Signature': `t=${t},s=${sig}` } });
      return { status: r.status, body: await r.text() };
    },
    count: (path) => requests.filter((r) => r.path === path).length,
    delay: (path, ms) => void delays.set(path, ms),
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}

/** `n` videos, one a minute apart going back from `newest` (unix seconds), ids like TikTok's 19-digit item ids. */
export function makeVideos(n: number, newest: number): SimVideo[] {
  return Array.from({ length: n }, (_, i) => ({
    id: String(7_200_000_000_000_000_000n + BigInt(Math.floor(Math.random() * 1e15)) * 1000n + BigInt(i)),
    create_time: newest - i * 60,
    title: `Video ${i + 1}`,
    video_description: `Video ${i + 1} #sim`,
    duration: 15 + (i % 45),
    height: 1920,
    width: 1080,
    like_count: 10 * (i + 1),
    comment_count: i,
    share_count: 2 * i,
    view_count: 100 * (i + 1),
  }));
}

export type { ResearchVideo, SimUser, SimVideo } from './state.ts';

/**
 * TikTok's v2 endpoints this service calls, with their documented limits: Display API 600 requests
 * per minute per app (one-minute sliding window), Content Posting API per user access token
 * (creator info 20, init 6, status 30 per minute), Research API 1,000 requests per day per app.
 */
export const ENDPOINTS = {
  'user.info': { method: 'GET', path: '/v2/user/info/', limit: 600, windowMs: 60_000, per: 'app' },
  'video.list': { method: 'POST', path: '/v2/video/list/', limit: 600, windowMs: 60_000, per: 'app' },
  'video.query': { method: 'POST', path: '/v2/video/query/', limit: 600, windowMs: 60_000, per: 'app' },
  'creator_info': { method: 'POST', path: '/v2/post/publish/creator_info/query/', limit: 20, windowMs: 60_000, per: 'token' },
  'publish.init': { method: 'POST', path: '/v2/post/publish/video/init/', limit: 6, windowMs: 60_000, per: 'token' },
  'publish.status': { method: 'POST', path: '/v2/post/publish/status/fetch/', limit: 30, windowMs: 60_000, per: 'token' },
  'research.video': { method: 'POST', path: '/v2/research/video/query/', limit: 1000, windowMs: 86_400_000, per: 'app' },
} as const;

export type EndpointName = keyof typeof ENDPOINTS;

/** The scopes an endpoint needs (what to grant when TikTok says one is missing). */
export const ENDPOINT_SCOPES: Record<EndpointName, string[]> = {
  'user.info': ['user.info.basic'],
  'video.list': ['video.list'],
  'video.query': ['video.list'],
  creator_info: ['video.publish'],
  'publish.init': ['video.publish'],
  'publish.status': ['video.publish'],
  'research.video': ['research.data.basic'],
};

/** Per-minute (per-day for research) limits, with overrides from TIKTOK_RATE_LIMITS. */
export function limitsFrom(json: string | undefined): Record<EndpointName, number> {
  const base = Object.fromEntries(Object.entries(ENDPOINTS).map(([k, v]) => [k, v.limit])) as Record<EndpointName, number>;
  if (!json) return base;
  const given = JSON.parse(json) as Record<string, unknown>;
  for (const [k, v] of Object.entries(given)) {
    if (!(k in ENDPOINTS) || typeof v !== 'number' || !(v > 0)) throw new Error(`TIKTOK_RATE_LIMITS: ${k} must be one of ${Object.keys(ENDPOINTS).join(', ')} with a positive number`);
    base[k as EndpointName] = v;
  }
  return base;
}

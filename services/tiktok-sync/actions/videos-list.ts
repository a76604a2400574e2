import { videosListInput, videosQueryInput } from '../../../shared/connectors/catalog/tiktok.ts';
import { handler } from '../../../shared/connectors/types.ts';
import { commandCall, type ActionDeps } from './deps.ts';

/** `videos.list`: one page of POST /v2/video/list/ (newest first; pass back `cursor` while `has_more`). */
export const videosList = (d: ActionDeps) =>
  handler(videosListInput, async (ctx) => {
    const p = ctx.params;
    const data = await d.tokens.withUserToken(ctx.workspaceId, ctx.idempotencyKey, (token) =>
      d.api.call<{ videos?: unknown[]; cursor?: number; has_more?: boolean }>('video.list', { token, query: { fields: p.fields.join(',') }, body: { max_count: p.max_count, ...(p.cursor !== undefined ? { cursor: p.cursor } : {}) }, ...commandCall(ctx) }),
    ctx.signal);
    return { videos: data.videos ?? [], cursor: data.cursor ?? 0, has_more: data.has_more ?? false };
  });

/** `videos.query`: POST /v2/video/query/ for up to 20 ids; ids that are not the account's are left out, as TikTok does. */
export const videosQuery = (d: ActionDeps) =>
  handler(videosQueryInput, async (ctx) => {
    const p = ctx.params;
    const data = await d.tokens.withUserToken(ctx.workspaceId, ctx.idempotencyKey, (token) =>
      d.api.call<{ videos?: unknown[] }>('video.query', { token, query: { fields: p.fields.join(',') }, body: { filters: { video_ids: p.video_ids } }, ...commandCall(ctx) }),
    ctx.signal);
    return { videos: data.videos ?? [] };
  });

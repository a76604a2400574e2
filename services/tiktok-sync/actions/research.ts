import { researchHashtagsInput, researchVideosInput } from '../../../shared/connectors/catalog/tiktok.ts';
import { handler } from '../../../shared/connectors/types.ts';
import { commandCall, type ActionDeps } from './deps.ts';

type ResearchPage = { videos?: Record<string, unknown>[]; cursor?: number; has_more?: boolean; search_id?: string };

/** `research.videos.query`: POST /v2/research/video/query/ with the app's client token, one page. */
export const researchVideos = (d: ActionDeps) =>
  handler(researchVideosInput, async (ctx) => {
    const { fields, ...body } = ctx.params;
    const data = await d.clientTokens.withClientToken((token) => d.api.call<ResearchPage>('research.video', { token, query: { fields: fields.join(',') }, body, ...commandCall(ctx) }));
    return { videos: data.videos ?? [], cursor: data.cursor ?? 0, has_more: data.has_more ?? false, search_id: String(data.search_id ?? '') };
  });

/**
 * `research.hashtags.query`: the Research API has no hashtag endpoint, so this pages through
 * /v2/research/video/query/ for videos carrying any of the hashtags (and region codes, if given)
 * and adds up, per hashtag, videos, views, likes, comments and shares, plus the hashtags seen most
 * often beside it. At most `max_videos` videos are examined (pages of 100, one search id).
 */
export const researchHashtags = (d: ActionDeps) =>
  handler(researchHashtagsInput, async (ctx) => {
    const p = ctx.params;
    const tags = [...new Set(p.hashtags.map((h) => h.replace(/^#/, '').toLowerCase()))];
    const query = { and: [{ operation: 'IN', field_name: 'hashtag_name', field_values: tags }, ...(p.region_codes?.length ? [{ operation: 'IN', field_name: 'region_code', field_values: p.region_codes }] : [])] };
    const stats = new Map(tags.map((t) => [t, { name: t, video_count: 0, view_count: 0, like_count: 0, comment_count: 0, share_count: 0, related: new Map<string, number>() }]));
    let cursor = 0;
    let searchId: string | undefined;
    let examined = 0;
    let hasMore = true;
    while (hasMore && examined < p.max_videos) {
      const body = { query, start_date: p.start_date, end_date: p.end_date, max_count: Math.min(100, p.max_videos - examined), cursor, ...(searchId ? { search_id: searchId } : {}) };
      const page = await d.clientTokens.withClientToken((token) => d.api.call<ResearchPage>('research.video', { token, query: { fields: 'id,hashtag_names,view_count,like_count,comment_count,share_count' }, body, ...commandCall(ctx) }));
      for (const v of page.videos ?? []) {
        const names = ((v.hashtag_names as string[] | undefined) ?? []).map((h) => h.toLowerCase());
        for (const t of names) {
          const s = stats.get(t);
          if (!s) continue;
          s.video_count++;
          for (const k of ['view_count', 'like_count', 'comment_count', 'share_count'] as const) s[k] += Number(v[k] ?? 0);
          for (const other of names) if (other !== t) s.related.set(other, (s.related.get(other) ?? 0) + 1);
        }
      }
      examined += page.videos?.length ?? 0;
      hasMore = Boolean(page.has_more) && (page.videos?.length ?? 0) > 0;
      cursor = page.cursor ?? cursor;
      searchId = page.search_id ? String(page.search_id) : searchId;
    }
    return {
      hashtags: [...stats.values()].map(({ related, ...s }) => ({ ...s, top_related: [...related].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([name, video_count]) => ({ name, video_count })) })),
      videos_examined: examined,
      has_more: hasMore,
      ...(searchId ? { search_id: searchId } : {}),
    };
  });

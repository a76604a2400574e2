import { z } from 'zod';
import type { Manifest } from '../manifest.ts';
import { outboundFetch } from '../../net/outbound.ts';
import type { ConnectorSpec } from '../types.ts';

/**
 * The TikTok connector's contract: what `services/tiktok-sync` serves on `ionflux.cmd.tiktok`,
 * what the CLI lists, and what the schema registry shows. Field names and limits follow TikTok's
 * v2 reference (Display API, Research API, Content Posting API; see docs/tiktok-sync.md).
 */

/** /v2/user/info/ fields and the scope each needs. */
export const USER_FIELD_SCOPES = {
  open_id: 'user.info.basic', union_id: 'user.info.basic', avatar_url: 'user.info.basic', avatar_url_100: 'user.info.basic',
  avatar_large_url: 'user.info.basic', display_name: 'user.info.basic',
  bio_description: 'user.info.profile', profile_deep_link: 'user.info.profile', is_verified: 'user.info.profile', username: 'user.info.profile',
  follower_count: 'user.info.stats', following_count: 'user.info.stats', likes_count: 'user.info.stats', video_count: 'user.info.stats',
} as const;
export const USER_FIELDS = Object.keys(USER_FIELD_SCOPES) as (keyof typeof USER_FIELD_SCOPES)[];

/** Video object fields of /v2/video/list/ and /v2/video/query/ (scope video.list). */
export const VIDEO_FIELDS = ['id', 'create_time', 'cover_image_url', 'share_url', 'video_description', 'duration', 'height', 'width', 'title', 'embed_html', 'embed_link', 'like_count', 'comment_count', 'share_count', 'view_count'] as const;
/** What polling and the list action ask for unless told otherwise (embed_html is large and derivable). */
export const DEFAULT_VIDEO_FIELDS: (typeof VIDEO_FIELDS)[number][] = VIDEO_FIELDS.filter((f) => f !== 'embed_html');

/** Research API video fields (/v2/research/video/query/). */
export const RESEARCH_VIDEO_FIELDS = ['id', 'video_description', 'create_time', 'region_code', 'share_count', 'view_count', 'like_count', 'comment_count', 'music_id', 'hashtag_names', 'username', 'effect_ids', 'playlist_id', 'voice_to_text', 'is_stem_verified', 'favourites_count', 'video_duration'] as const;
export const RESEARCH_CONDITION_FIELDS = ['create_date', 'username', 'region_code', 'video_id', 'hashtag_name', 'keyword', 'music_id', 'effect_id', 'video_length'] as const;

export const PRIVACY_LEVELS = ['PUBLIC_TO_EVERYONE', 'MUTUAL_FOLLOW_FRIENDS', 'FOLLOWER_OF_CREATOR', 'SELF_ONLY'] as const;
export const FINAL_PUBLISH_STATUSES = ['PUBLISH_COMPLETE', 'SEND_TO_USER_INBOX', 'FAILED'] as const;

const day = z.string().regex(/^\d{8}$/, 'YYYYMMDD');
const fieldsOf = <T extends readonly [string, ...string[]]>(all: T, fallback: T[number][]) => z.array(z.enum(all)).min(1).max(all.length).default(fallback as never);

/** A video as TikTok returns it: only the requested fields are present. */
export const videoSchema = z.looseObject({
  id: z.string(),
  create_time: z.number().int().optional(),
  cover_image_url: z.string().optional(),
  share_url: z.string().optional(),
  video_description: z.string().optional(),
  duration: z.number().optional(),
  height: z.number().optional(),
  width: z.number().optional(),
  title: z.string().optional(),
  embed_html: z.string().optional(),
  embed_link: z.string().optional(),
  like_count: z.number().optional(),
  comment_count: z.number().optional(),
  share_count: z.number().optional(),
  view_count: z.number().optional(),
});
export type Video = z.infer<typeof videoSchema>;

export const userInfoInput = z.object({ fields: fieldsOf(USER_FIELDS as unknown as [string, ...string[]], ['open_id', 'union_id', 'avatar_url', 'display_name']) });
export const userInfoOutput = z.object({ user: z.record(z.string(), z.unknown()) });

export const videosListInput = z.object({
  fields: fieldsOf(VIDEO_FIELDS, DEFAULT_VIDEO_FIELDS),
  /** UTC ms: videos posted before it (TikTok's cursor); omit for the newest. */
  cursor: z.number().int().nonnegative().optional(),
  max_count: z.number().int().min(1).max(20).default(20),
});
export const videosListOutput = z.object({ videos: z.array(videoSchema), cursor: z.number(), has_more: z.boolean() });

export const videosQueryInput = z.object({ video_ids: z.array(z.string().regex(/^\d{1,32}$/)).min(1).max(20), fields: fieldsOf(VIDEO_FIELDS, DEFAULT_VIDEO_FIELDS) });
export const videosQueryOutput = z.object({ videos: z.array(videoSchema) });

const condition = z.object({ operation: z.enum(['EQ', 'IN', 'GT', 'GTE', 'LT', 'LTE']), field_name: z.enum(RESEARCH_CONDITION_FIELDS), field_values: z.array(z.string().min(1).max(200)).min(1).max(100) });
export const researchQuerySchema = z
  .object({ and: z.array(condition).max(20).optional(), or: z.array(condition).max(20).optional(), not: z.array(condition).max(20).optional() })
  .refine((q) => Boolean(q.and?.length || q.or?.length || q.not?.length), 'at least one non-empty and, or or not list');
const dateRange = { start_date: day, end_date: day };
const within30Days = (p: { start_date: string; end_date: string }) => {
  const d = (s: string) => Date.UTC(Number(s.slice(0, 4)), Number(s.slice(4, 6)) - 1, Number(s.slice(6, 8)));
  return d(p.end_date) >= d(p.start_date) && d(p.end_date) - d(p.start_date) <= 30 * 86400_000;
};
const rangeMessage = { message: 'end_date must be on or after start_date and at most 30 days after it', path: ['end_date'] };

export const researchVideosInput = z
  .object({
    query: researchQuerySchema,
    ...dateRange,
    fields: fieldsOf(RESEARCH_VIDEO_FIELDS, ['id', 'video_description', 'create_time', 'region_code', 'like_count', 'comment_count', 'share_count', 'view_count', 'hashtag_names', 'username']),
    max_count: z.number().int().min(1).max(100).default(20),
    cursor: z.number().int().nonnegative().optional(),
    search_id: z.string().max(64).optional(),
    is_random: z.boolean().optional(),
  })
  .refine(within30Days, rangeMessage);
export const researchVideosOutput = z.object({ videos: z.array(z.looseObject({ id: z.union([z.string(), z.number()]) })), cursor: z.number(), has_more: z.boolean(), search_id: z.string() });

/**
 * The Research API has no hashtag endpoint: this runs /v2/research/video/query/ with a
 * `hashtag_name IN [...]` condition and aggregates the videos it returns per hashtag.
 */
export const researchHashtagsInput = z
  .object({
    hashtags: z.array(z.string().regex(/^#?[\p{L}\p{N}_]{1,100}$/u)).min(1).max(20),
    ...dateRange,
    region_codes: z.array(z.string().regex(/^[A-Z]{2}$/)).max(50).optional(),
    /** Videos examined at most (pages of 100). */
    max_videos: z.number().int().min(1).max(1000).default(200),
  })
  .refine(within30Days, rangeMessage);
const hashtagStats = z.object({ name: z.string(), video_count: z.number(), view_count: z.number(), like_count: z.number(), comment_count: z.number(), share_count: z.number(), top_related: z.array(z.object({ name: z.string(), video_count: z.number() })) });
export const researchHashtagsOutput = z.object({ hashtags: z.array(hashtagStats), videos_examined: z.number(), has_more: z.boolean(), search_id: z.string().optional() });

export const videosPublishInput = z.object({
  /** PULL_FROM_URL: TikTok fetches the URL (its domain must be verified with TikTok); FILE_UPLOAD: the hub fetches it and uploads it in chunks. */
  source: z.enum(['PULL_FROM_URL', 'FILE_UPLOAD']),
  video_url: z.url({ protocol: /^https?$/ }),
  title: z.string().max(2200).optional(),
  privacy_level: z.enum(PRIVACY_LEVELS),
  disable_duet: z.boolean().default(false),
  disable_comment: z.boolean().default(false),
  disable_stitch: z.boolean().default(false),
  video_cover_timestamp_ms: z.number().int().nonnegative().optional(),
  brand_content_toggle: z.boolean().default(false),
  brand_organic_toggle: z.boolean().default(false),
  is_aigc: z.boolean().optional(),
});
export const videosPublishOutput = z.object({
  publish_id: z.string(),
  status: z.enum(FINAL_PUBLISH_STATUSES),
  post_ids: z.array(z.string()),
  /** Which told us first: status polling or a post.publish.* webhook. */
  status_source: z.enum(['poll', 'webhook']),
});

/** Events the worker publishes on ionflux.tiktok.ws_<ws>.<entity>.<action>, same entities as the ingester's TikTok mapping. */
const polledVideo = z.object({ open_id: z.string(), video: videoSchema, version: z.string(), previous_version: z.string().optional(), seen_at: z.string() });
export const events = {
  'video.created': polledVideo,
  'video.updated': polledVideo,
  'authorization.granted': z.object({ open_id: z.string(), scope: z.array(z.string()), connected_at: z.string() }),
  'authorization.needs_reauthorization': z.object({ open_id: z.string(), reason: z.string(), connect_url: z.string() }),
} as const satisfies Record<string, z.ZodType>;

const read = (description: string, input: z.ZodType, output: z.ZodType) => ({ description, input, output, approvalGate: 'read_only', permission: 'read', auditRequired: false }) as const;

export const manifest: Manifest = {
  id: 'tiktok',
  name: 'TikTok',
  category: 'social',
  version: '1.0.0',
  authType: 'oauth',
  permissionsRequested: ['read', 'external_write'],
  riskLevel: 'high',
  authHelp: 'Connect a TikTok account with `ionflux connect tiktok --workspace <workspace>` (or open <PUBLIC_BASE_URL>/tiktok/connect?workspace=<workspace>): TikTok Login Kit v2 with PKCE. See docs/tiktok-sync.md.',
  credentialFields: ['access_token'],
  healthcheck: { description: 'Reads the connected account with /v2/user/info/.' },
  disconnectPolicy: 'revoke_and_delete',
  dataRetentionPolicy: 'Access and refresh tokens stay in the secret store until disconnect or TikTok reports authorization.removed. Polled videos become events (topic retention); the last seen version of each video is kept in ionflux.state.tiktok-videos until the account is unlinked.',
  actions: {
    'user.info': read('The connected account, with the fields the caller chooses (each needs its scope).', userInfoInput, userInfoOutput),
    'videos.list': read("The connected account's public videos, newest first, one page (cursor pagination).", videosListInput, videosListOutput),
    'videos.query': read('Videos of the connected account by id (at most 20).', videosQueryInput, videosQueryOutput),
    'research.videos.query': read('Research API video query (client token; its own daily quota).', researchVideosInput, researchVideosOutput),
    'research.hashtags.query': read('Per-hashtag totals from a Research API video query over the given days.', researchHashtagsInput, researchHashtagsOutput),
    'videos.publish': {
      description: 'Posts a video (Content Posting API, Direct Post) and waits for its final status.',
      input: videosPublishInput,
      output: videosPublishOutput,
      approvalGate: 'external_write',
      permission: 'external_write',
      auditRequired: true,
    },
  },
};

/** tiktok-sync's contract (its implementation is services/tiktok-sync/). */
export const spec: ConnectorSpec = {
  manifest,
  events,
  /** The stored access token, read against /v2/user/info/ (TIKTOK_API_BASE_URL, else TikTok's). */
  async healthcheck(credentials, signal) {
    if (!credentials.access_token) return { ok: false, detail: 'no access token: connect TikTok with `ionflux connect tiktok --workspace <workspace>`' };
    const base = (process.env.TIKTOK_API_BASE_URL ?? 'https://open.tiktokapis.com').replace(/\/$/, '');
    const res = await outboundFetch(`${base}/v2/user/info/?fields=open_id,display_name`, { headers: { authorization: `Bearer ${credentials.access_token}` }, signal });
    const body = (await res.json().catch(() => ({}))) as { data?: { user?: { display_name?: string } }; error?: { code?: string; message?: string } };
    if (res.ok && body.error?.code === 'ok') return { ok: true, detail: `connected as ${body.data?.user?.display_name ?? 'the linked account'}` };
    return { ok: false, detail: `TikTok answered ${res.status} ${body.error?.code ?? ''}: ${body.error?.message ?? ''}`.trim() };
  },
};

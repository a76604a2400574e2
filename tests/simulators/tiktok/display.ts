import type { ServerResponse } from 'node:http';
import { fail, ok, type Grant, type SimState, type SimUser, type SimVideo } from './state.ts';

/** Display API v2: GET /v2/user/info/, POST /v2/video/list/ and /v2/video/query/ (scope video.list). */
const USER_SCOPES: Record<string, string> = {
  open_id: 'user.info.basic', union_id: 'user.info.basic', avatar_url: 'user.info.basic', avatar_url_100: 'user.info.basic', avatar_large_url: 'user.info.basic', display_name: 'user.info.basic',
  bio_description: 'user.info.profile', profile_deep_link: 'user.info.profile', is_verified: 'user.info.profile', username: 'user.info.profile',
  follower_count: 'user.info.stats', following_count: 'user.info.stats', likes_count: 'user.info.stats', video_count: 'user.info.stats',
};
const VIDEO_FIELDS = new Set(['id', 'create_time', 'cover_image_url', 'share_url', 'video_description', 'duration', 'height', 'width', 'title', 'embed_html', 'embed_link', 'like_count', 'comment_count', 'share_count', 'view_count']);

function fieldsOf(url: URL, allowed: Set<string> | Record<string, string>): string[] | string {
  const raw = url.searchParams.get('fields');
  if (!raw) return 'fields is required';
  const fields = raw.split(',').map((f) => f.trim()).filter(Boolean);
  const known = allowed instanceof Set ? allowed : new Set(Object.keys(allowed));
  const bad = fields.filter((f) => !known.has(f));
  return bad.length ? `invalid fields: ${bad.join(',')}` : fields;
}

export function userInfo(s: SimState, g: Grant, url: URL, res: ServerResponse): void {
  const fields = fieldsOf(url, USER_SCOPES);
  if (typeof fields === 'string') return fail(res, 'invalid_params', fields);
  const missing = [...new Set(fields.map((f) => USER_SCOPES[f]!).filter((scope) => !g.scopes.includes(scope)))];
  if (missing.length) return fail(res, 'scope_permission_missed', `Access token is invalid, some fields need additional scopes: ${missing.join(',')}`);
  const u = s.users.get(g.open_id)!;
  const all: Record<string, unknown> = {
    open_id: u.open_id, union_id: u.union_id, avatar_url: u.avatar_url, avatar_url_100: `${u.avatar_url}?s=100`, avatar_large_url: `${u.avatar_url}?s=1080`, display_name: u.display_name,
    bio_description: u.bio_description, profile_deep_link: `https://vm.tiktok.com/${u.username}`, is_verified: u.is_verified, username: u.username,
    follower_count: u.follower_count, following_count: u.following_count, likes_count: u.likes_count, video_count: u.videos.length,
  };
  ok(res, { user: Object.fromEntries(fields.map((f) => [f, all[f]])) });
}

function videoObject(u: SimUser, v: SimVideo, fields: string[]): Record<string, unknown> {
  const all: Record<string, unknown> = {
    ...v,
    // Signed CDN links that expire (6 hours): a new signature on every call, as TikTok's do.
    cover_image_url: `https://p16-sign.tiktokcdn-us.com/obj/${v.id}~tplv-noop.image?x-expires=${Math.floor(Date.now() / 1000) + 21_600}&x-signature=${Math.random().toString(36).slice(2)}`,
    share_url: `https://www.tiktok.com/@${u.username}/video/${v.id}`,
    embed_link: `https://www.tiktok.com/player/v1/${v.id}`,
    embed_html: `<blockquote class="tiktok-embed" cite="https://www.tiktok.com/@${u.username}/video/${v.id}" data-video-id="${v.id}"></blockquote>`,
  };
  return Object.fromEntries(fields.map((f) => [f, all[f]]));
}

export function videoList(s: SimState, g: Grant, url: URL, body: Record<string, unknown>, res: ServerResponse): void {
  if (!g.scopes.includes('video.list')) return fail(res, 'scope_not_authorized', 'The user did not authorize the scope required for completing this request.');
  const fields = fieldsOf(url, VIDEO_FIELDS);
  if (typeof fields === 'string') return fail(res, 'invalid_params', fields);
  const max = body.max_count === undefined ? 10 : Number(body.max_count);
  if (!Number.isInteger(max) || max < 1 || max > 20) return fail(res, 'invalid_params', 'max_count must be between 1 and 20');
  const cursor = body.cursor === undefined || body.cursor === null ? Number.MAX_SAFE_INTEGER : Number(body.cursor);
  if (!Number.isFinite(cursor) || cursor < 0) return fail(res, 'invalid_params', 'cursor is invalid');
  const u = s.users.get(g.open_id)!;
  // Newest first; the cursor is a UTC timestamp in ms: videos posted before it.
  const older = u.videos.filter((v) => v.create_time * 1000 < cursor).sort((a, b) => b.create_time - a.create_time || (a.id < b.id ? 1 : -1));
  const page = older.slice(0, max);
  const last = page.at(-1);
  ok(res, { videos: page.map((v) => videoObject(u, v, fields)), cursor: last ? last.create_time * 1000 : 0, has_more: older.length > page.length });
}

export function videoQuery(s: SimState, g: Grant, url: URL, body: Record<string, unknown>, res: ServerResponse): void {
  if (!g.scopes.includes('video.list')) return fail(res, 'scope_not_authorized', 'The user did not authorize the scope required for completing this request.');
  const fields = fieldsOf(url, VIDEO_FIELDS);
  if (typeof fields === 'string') return fail(res, 'invalid_params', fields);
  const ids = (body.filters as { video_ids?: unknown } | undefined)?.video_ids;
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > 20) return fail(res, 'invalid_params', 'filters.video_ids must hold 1 to 20 ids');
  const u = s.users.get(g.open_id)!;
  // Only the caller's own videos come back; others are silently left out.
  ok(res, { videos: u.videos.filter((v) => ids.includes(v.id)).map((v) => videoObject(u, v, fields)) });
}

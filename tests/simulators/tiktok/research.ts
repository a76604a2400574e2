import type { ServerResponse } from 'node:http';
import { fail, int64, ok, rand, type ResearchVideo, type SimState } from './state.ts';

/**
 * POST /v2/research/video/query/ with a client access token (clt.): the query object's and / or /
 * not conditions over create_date, username, region_code, video_id, hashtag_name, keyword,
 * music_id, effect_id and video_length; start_date/end_date (YYYYMMDD, at most 30 days apart);
 * max_count up to 100; cursor and search_id to page through one cached search.
 */
type Condition = { operation: string; field_name: string; field_values: string[] };
const OPS = new Set(['EQ', 'IN', 'GT', 'GTE', 'LT', 'LTE']);
const FIELDS = new Set(['id', 'video_description', 'create_time', 'region_code', 'share_count', 'view_count', 'like_count', 'comment_count', 'music_id', 'hashtag_names', 'username', 'effect_ids', 'playlist_id', 'voice_to_text', 'is_stem_verified', 'favourites_count', 'video_duration']);
const CONDITION_FIELDS = new Set(['create_date', 'username', 'region_code', 'video_id', 'hashtag_name', 'keyword', 'music_id', 'effect_id', 'video_length']);
const searches = new Map<string, string[]>();

const ymd = (s: string) => (/^\d{8}$/.test(s) ? Date.UTC(Number(s.slice(0, 4)), Number(s.slice(4, 6)) - 1, Number(s.slice(6, 8))) : Number.NaN);

function values(v: ResearchVideo, field: string): (string | number)[] {
  switch (field) {
    case 'create_date': return [new Date(v.create_time * 1000).toISOString().slice(0, 10).replace(/-/g, '')];
    case 'username': return [v.username];
    case 'region_code': return [v.region_code];
    case 'video_id': return [v.id];
    case 'hashtag_name': return v.hashtag_names.map((h) => h.toLowerCase());
    case 'keyword': return [v.video_description.toLowerCase()];
    case 'music_id': return [v.music_id];
    case 'effect_id': return v.effect_ids;
    case 'video_length': return [v.video_duration < 15 ? 'SHORT' : v.video_duration < 60 ? 'MID' : v.video_duration < 300 ? 'LONG' : 'EXTRA_LONG'];
    default: return [];
  }
}

function matches(v: ResearchVideo, c: Condition): boolean {
  const have = values(v, c.field_name);
  const want = c.field_values.map((x) => (c.field_name === 'hashtag_name' || c.field_name === 'keyword' ? x.toLowerCase() : x));
  if (c.field_name === 'keyword') return want.some((w) => String(have[0]).includes(w));
  if (c.operation === 'EQ' || c.operation === 'IN') return have.some((h) => want.includes(String(h)));
  const [a, b] = [Number(have[0]), Number(want[0])];
  return c.operation === 'GT' ? a > b : c.operation === 'GTE' ? a >= b : c.operation === 'LT' ? a < b : a <= b;
}

export function researchVideoQuery(s: SimState, url: URL, body: Record<string, unknown>, res: ServerResponse): void {
  const fields = (url.searchParams.get('fields') ?? '').split(',').map((f) => f.trim()).filter(Boolean);
  if (fields.length === 0 || fields.some((f) => !FIELDS.has(f))) return fail(res, 'invalid_params', `fields must be chosen from ${[...FIELDS].join(',')}`);
  const q = body.query as Record<string, Condition[] | undefined> | undefined;
  const lists = ['and', 'or', 'not'].map((k) => q?.[k] ?? []);
  if (!q || lists.every((l) => !Array.isArray(l) || l.length === 0)) return fail(res, 'invalid_params', 'query must contain at least one non-empty and, or or not list');
  for (const c of lists.flat()) {
    if (!OPS.has(c?.operation) || !Array.isArray(c?.field_values) || c.field_values.length === 0) return fail(res, 'invalid_params', `invalid condition ${JSON.stringify(c)}`);
    if (!CONDITION_FIELDS.has(c.field_name)) return fail(res, 'invalid_params', `unknown field_name ${c.field_name}`);
  }
  const start = ymd(String(body.start_date ?? ''));
  const end = ymd(String(body.end_date ?? ''));
  if (Number.isNaN(start) || Number.isNaN(end)) return fail(res, 'invalid_params', 'start_date and end_date are required as YYYYMMDD');
  if (end < start || end - start > 30 * 86400_000) return fail(res, 'invalid_params', 'end_date must be no more than 30 days after start_date');
  const max = body.max_count === undefined ? 20 : Number(body.max_count);
  if (!Number.isInteger(max) || max < 1 || max > 100) return fail(res, 'invalid_params', 'max_count must be between 1 and 100');

  let searchId = typeof body.search_id === 'string' ? body.search_id : '';
  let ids = searchId ? searches.get(searchId) : undefined;
  if (searchId && !ids) return fail(res, 'invalid_params', 'search_id is invalid or expired');
  if (!ids) {
    const [and, or, not] = lists as Condition[][];
    const hits = s.research.filter((v) => {
      const t = v.create_time * 1000;
      if (t < start || t >= end + 86400_000) return false;
      return and!.every((c) => matches(v, c)) && (or!.length === 0 || or!.some((c) => matches(v, c))) && !not!.some((c) => matches(v, c));
    });
    ids = hits.sort((a, b) => b.create_time - a.create_time).map((v) => v.id);
    searchId = String(BigInt(`0x${rand(7)}`));
    searches.set(searchId, ids);
  }
  const cursor = Number(body.cursor ?? 0);
  const page = ids.slice(cursor, cursor + max).map((id) => s.research.find((v) => v.id === id)!);
  ok(res, {
    videos: page.map((v) => Object.fromEntries(fields.map((f) => [f, f === 'id' || f === 'music_id' ? int64(v[f]) : (v as unknown as Record<string, unknown>)[f]]).filter(([, x]) => x !== undefined))),
    cursor: cursor + page.length,
    has_more: cursor + page.length < ids.length,
    search_id: searchId,
  });
}

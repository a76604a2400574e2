import type { IncomingMessage, ServerResponse } from 'node:http';
import { fail, int64, json, logId, ok, rand, type Grant, type Publish, type SimState } from './state.ts';

/**
 * Content Posting API, Direct Post: POST /v2/post/publish/creator_info/query/, POST
 * /v2/post/publish/video/init/ (PULL_FROM_URL from a verified URL prefix, or FILE_UPLOAD with
 * TikTok's chunk rules), PUT <upload_url> with Content-Range, and POST
 * /v2/post/publish/status/fetch/ (PROCESSING_UPLOAD | PROCESSING_DOWNLOAD | SEND_TO_USER_INBOX |
 * PUBLISH_COMPLETE | FAILED). A post stays processing until `finish` is called, or completes after
 * `autoCompleteAfterPolls` status fetches when that is set.
 */
const MB = 1024 * 1024;
const PRIVACY = new Set(['PUBLIC_TO_EVERYONE', 'MUTUAL_FOLLOW_FRIENDS', 'FOLLOWER_OF_CREATOR', 'SELF_ONLY']);

export function creatorInfo(s: SimState, g: Grant, res: ServerResponse): void {
  if (!g.scopes.includes('video.publish')) return fail(res, 'scope_not_authorized', 'The user did not authorize the scope required for completing this request.');
  const u = s.users.get(g.open_id)!;
  ok(res, { creator_avatar_url: u.avatar_url, creator_username: u.username, creator_nickname: u.display_name, privacy_level_options: u.privacy_level_options, comment_disabled: false, duet_disabled: false, stitch_disabled: true, max_video_post_duration_sec: 600 });
}

/**
 * Chunks (Media Transfer Guide): 5 MB to 64 MB each, the last up to 128 MB; total_chunk_count =
 * floor(video_size / chunk_size), 1 to 1000 of them; under 5 MB one chunk of the full size; over
 * 64 MB more than one chunk.
 */
function chunkProblem(size: number, chunk: number, count: number): string | null {
  if (!Number.isInteger(size) || size <= 0 || size > 4096 * MB) return 'video_size is invalid';
  if (size < 5 * MB) return chunk === size && count === 1 ? null : 'videos under 5 MB must be uploaded in one chunk of their full size';
  if (chunk < 5 * MB || chunk > 64 * MB) return 'chunk_size must be between 5 MB and 64 MB';
  if (count !== Math.floor(size / chunk)) return 'total_chunk_count must be floor(video_size / chunk_size)';
  if (count < 1 || count > 1000) return 'total_chunk_count must be between 1 and 1000';
  return size > 64 * MB && count < 2 ? 'videos over 64 MB must be uploaded in multiple chunks' : null;
}

export function init(s: SimState, g: Grant, body: Record<string, unknown>, res: ServerResponse, o: { origin: string; verifiedPrefixes: string[] }): void {
  if (!g.scopes.includes('video.publish')) return fail(res, 'scope_not_authorized', 'The user did not authorize the scope required for completing this request.');
  const post = (body.post_info ?? {}) as Record<string, unknown>;
  const src = (body.source_info ?? {}) as Record<string, unknown>;
  const u = s.users.get(g.open_id)!;
  if (!PRIVACY.has(String(post.privacy_level))) return fail(res, 'invalid_params', 'post_info.privacy_level is required');
  if (!u.privacy_level_options.includes(String(post.privacy_level))) return fail(res, 'privacy_level_option_mismatch', 'privacy_level is not one of the creator\'s privacy_level_options');
  if (typeof post.title === 'string' && post.title.length > 2200) return fail(res, 'invalid_params', 'title is too long');
  const base: Omit<Publish, 'publish_id' | 'source' | 'status' | 'video_size'> = { open_id: g.open_id, uploaded_bytes: 0, downloaded_bytes: 0, polls: 0, post_info: post };
  if (src.source === 'PULL_FROM_URL') {
    const url = String(src.video_url ?? '');
    if (!/^https?:\/\//.test(url)) return fail(res, 'invalid_params', 'source_info.video_url is required');
    if (!o.verifiedPrefixes.some((p) => url.startsWith(p))) return fail(res, 'url_ownership_unverified', 'The domain or URL prefix of video_url is not verified for this app.');
    const p: Publish = { ...base, publish_id: `v_pub_url~v2-1.${BigInt(`0x${rand(7)}`)}`, source: 'PULL_FROM_URL', status: 'PROCESSING_DOWNLOAD', video_size: 0 };
    s.publishes.set(p.publish_id, p);
    return ok(res, { publish_id: p.publish_id });
  }
  if (src.source === 'FILE_UPLOAD') {
    const [size, chunk, count] = [Number(src.video_size), Number(src.chunk_size), Number(src.total_chunk_count)];
    const problem = chunkProblem(size, chunk, count);
    if (problem) return fail(res, 'invalid_params', problem);
    const p: Publish = { ...base, publish_id: `v_pub_file~v2-1.${BigInt(`0x${rand(7)}`)}`, source: 'FILE_UPLOAD', status: 'PROCESSING_UPLOAD', video_size: size, chunk_size: chunk, total_chunk_count: count, chunks_received: 0, upload_token: rand(12) };
    s.publishes.set(p.publish_id, p);
    return ok(res, { publish_id: p.publish_id, upload_url: `${o.origin}/video/?upload_id=${encodeURIComponent(p.publish_id)}&upload_token=${p.upload_token}` });
  }
  fail(res, 'invalid_params', 'source_info.source must be PULL_FROM_URL or FILE_UPLOAD');
}

/**
 * PUT upload_url: `Content-Range: bytes <first>-<last>/<total>`, chunk by chunk in order, each the
 * range init declared (chunk_size bytes, the last to the end); 206 until the last byte, then 201.
 */
export async function upload(s: SimState, url: URL, req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
  const p = s.publishes.get(url.searchParams.get('upload_id') ?? '');
  if (!p || p.upload_token !== url.searchParams.get('upload_token')) return void json(res, 404, { error: { code: 'invalid_upload', message: 'upload not found', log_id: logId() } });
  const refuse = (message: string) => void json(res, 400, { error: { code: 'invalid_file_upload', message, log_id: logId() } });
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(req.headers['content-range'] ?? '');
  if (!m || Number(m[3]) !== p.video_size || Number(m[2]) - Number(m[1]) + 1 !== body.length) return refuse('Content-Range does not match the body or the declared video_size');
  const [chunk, count] = [p.chunk_size!, p.total_chunk_count!];
  const i = Math.floor(Number(m[1]) / chunk);
  const end = i === count - 1 ? p.video_size - 1 : (i + 1) * chunk - 1;
  if (i >= count || Number(m[1]) !== i * chunk || Number(m[2]) !== end) return refuse(`Content-Range is not a chunk of the declared chunk_size ${chunk} and total_chunk_count ${count}`);
  // Chunks go in order; one sent again (same range) overwrites itself.
  if (i > p.chunks_received!) return refuse(`chunk ${i} sent before chunk ${p.chunks_received}: file chunks must be uploaded sequentially`);
  p.chunks_received = Math.max(p.chunks_received!, i + 1);
  p.uploaded_bytes = Math.max(p.uploaded_bytes, Number(m[2]) + 1);
  res.writeHead(p.uploaded_bytes >= p.video_size ? 201 : 206).end();
}

export function status(s: SimState, g: Grant, body: Record<string, unknown>, res: ServerResponse, autoCompleteAfterPolls: number | null): void {
  const p = s.publishes.get(String(body.publish_id ?? ''));
  if (!p || p.open_id !== g.open_id) return fail(res, 'invalid_publish_id', 'publish_id does not exist');
  p.polls++;
  if (autoCompleteAfterPolls !== null && p.polls >= autoCompleteAfterPolls && !isFinal(p)) finish(p, 'PUBLISH_COMPLETE');
  if (p.source === 'FILE_UPLOAD' && p.status === 'PROCESSING_UPLOAD' && p.uploaded_bytes >= p.video_size) p.status = 'PROCESSING_DOWNLOAD';
  ok(res, {
    status: p.status,
    ...(p.fail_reason ? { fail_reason: p.fail_reason } : {}),
    // int64 ids, written as JSON numbers the way TikTok sends them (past 2^53).
    publicaly_available_post_id: p.post_id ? [int64(p.post_id)] : [],
    uploaded_bytes: p.uploaded_bytes,
    downloaded_bytes: p.downloaded_bytes,
  });
}

export const isFinal = (p: Publish) => p.status === 'PUBLISH_COMPLETE' || p.status === 'FAILED' || p.status === 'SEND_TO_USER_INBOX';

export function finish(p: Publish, to: 'PUBLISH_COMPLETE' | 'FAILED', failReason = 'internal'): void {
  p.status = to;
  if (to === 'FAILED') p.fail_reason = failReason;
  else {
    p.downloaded_bytes = p.video_size || 1024;
    // Public posts get an id once moderation passes; private (SELF_ONLY) ones do not.
    if (p.post_info.privacy_level !== 'SELF_ONLY') p.post_id = String(7_300_000_000_000_000_000n + BigInt(Math.floor(Math.random() * 1e12)));
  }
}

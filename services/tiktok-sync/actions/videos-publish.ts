import { videosPublishInput } from '../../../shared/connectors/catalog/tiktok.ts';
import { handler, type ActionContext } from '../../../shared/connectors/types.ts';
import { describeError, HubError } from '../../../shared/errors.ts';
import { refusedByTikTok } from '../api/errors.ts';
import { unitKey, webhookKey, type PublishUnit, type WebhookStatus } from '../state/publishes.ts';
import { commandCall, type ActionDeps } from './deps.ts';
import { chunking, chunkRanges, fetchVideo } from './video-source.ts';

type Params = ReturnType<typeof videosPublishInput.parse>;

/**
 * Inits this process sent that ended without TikTok's refusal (a 5xx, a broken connection), with
 * the error: the in-process retry finds the ledger at `initializing` and tells the truth about it.
 * A ledger found at `initializing` with no entry here is a worker that stopped mid-init.
 */
const unsureInits = new Map<string, string>();
type Status = { status?: string; fail_reason?: string; publicaly_available_post_id?: (string | number)[] };

/**
 * `videos.publish` (resumable): creator info, then init, upload (FILE_UPLOAD), then status polling
 * until a final status, which may also arrive first as a post.publish.* webhook. Its ledger
 * (state/publishes.ts) is written before and after init and after each chunk, so a command
 * resumed after a crash never calls init twice: it finds the publish id and goes on polling.
 */
export const videosPublish = (d: ActionDeps) =>
  handler(videosPublishInput, async (ctx) => {
    const key = unitKey(ctx.workspaceId, ctx.idempotencyKey);
    const unit = () => d.ledger.get(key) as PublishUnit | undefined;
    const set = async (u: PublishUnit | undefined) => {
      await d.bus.publish(d.ledger.record(key, u));
      d.ledger.applyLocal(key, u);
    };
    return d.tokens.withUserToken(ctx.workspaceId, ctx.idempotencyKey, async (token) => {
      if (unit()?.phase === 'initializing') {
        const why = unsureInits.get(key);
        unsureInits.delete(key);
        throw new HubError('outcome_unknown', `${why ? `an earlier attempt asked TikTok to start this post and got no answer that says whether it did (${why})` : 'the worker stopped while asking TikTok to start this post'}; it is not asked again (the post may exist: check the account)`);
      }
      // The video read before init is the one uploaded: one download per attempt (up to TIKTOK_UPLOAD_MAX_BYTES in memory).
      const video = unit() ? undefined : await start(d, ctx, token, set);
      const u = unit()!;
      if (ctx.params.source === 'FILE_UPLOAD' && u.phase !== 'uploaded') await uploadRest(d, ctx, u, set, video);
      return pollToEnd(d, ctx, token, unit()!.publish_id!);
    }, ctx.signal);
  });

type Video = Awaited<ReturnType<typeof fetchVideo>>;

/** Creator info, the video for FILE_UPLOAD (returned, for the upload), init. */
async function start(d: ActionDeps, ctx: ActionContext<Params>, token: string, set: (u: PublishUnit | undefined) => Promise<void>): Promise<Video | undefined> {
  const p = ctx.params;
  const info = await d.api.call<{ privacy_level_options?: string[] }>('creator_info', { token, ...commandCall(ctx) });
  if (!(info.privacy_level_options ?? []).includes(p.privacy_level)) {
    throw new HubError('privacy_level_option_mismatch', `this creator can post with ${(info.privacy_level_options ?? []).join(', ') || 'no privacy level'}, not ${p.privacy_level}`);
  }
  let size = 0;
  let plan = { chunkSize: 0, count: 0 };
  let video: Video | undefined;
  if (p.source === 'FILE_UPLOAD') {
    // Fetched before init: a video we cannot read must not leave a half-made post behind.
    video = await fetchVideo(p.video_url, { ...d.publish, signal: ctx.signal });
    size = video.bytes.length;
    plan = chunking(size, d.publish.chunkBytes);
  }
  const post_info = { privacy_level: p.privacy_level, ...(p.title !== undefined ? { title: p.title } : {}), disable_duet: p.disable_duet, disable_comment: p.disable_comment, disable_stitch: p.disable_stitch, brand_content_toggle: p.brand_content_toggle, brand_organic_toggle: p.brand_organic_toggle, ...(p.video_cover_timestamp_ms !== undefined ? { video_cover_timestamp_ms: p.video_cover_timestamp_ms } : {}), ...(p.is_aigc !== undefined ? { is_aigc: p.is_aigc } : {}) };
  const source_info = p.source === 'PULL_FROM_URL' ? { source: 'PULL_FROM_URL', video_url: p.video_url } : { source: 'FILE_UPLOAD', video_size: size, chunk_size: plan.chunkSize, total_chunk_count: plan.count };
  // Handed over while asking for the creator's options or reading the video (which can take long):
  // past the rebalance timeout the partition's next owner starts this post, so this one must not.
  ctx.handover?.throwIfAborted();
  let asked = false;
  let data: { publish_id?: string; upload_url?: string };
  try {
    data = await d.api.call('publish.init', {
      token, body: { post_info, source_info }, ...commandCall(ctx),
      // Once init has its slot from the limiter (6 a minute per user: a wait of up to 65 s), the
      // handover is checked again, and the ledger written, right before it is sent.
      beforeSend: async () => {
        ctx.handover?.throwIfAborted();
        await set({ phase: 'initializing', at: Date.now() });
        asked = true;
      },
    });
  } catch (e) {
    // TikTok answered and refused (4xx, throttled, token): nothing was created, so init may run again.
    if (asked && refusedByTikTok(e)) await set(undefined);
    // A 5xx or a broken connection: the post may exist; the next attempt says so, and why.
    else if (asked) unsureInits.set(unitKey(ctx.workspaceId, ctx.idempotencyKey), describeError(e).message.slice(0, 300));
    throw e;
  }
  if (!data.publish_id) throw new HubError('invalid_vendor_response', 'TikTok started the post but sent no publish_id');
  const promised = p.source === 'FILE_UPLOAD' ? { video_size: size, chunk_size: plan.chunkSize, chunk_count: plan.count } : {};
  await set({ phase: p.source === 'FILE_UPLOAD' ? 'initialized' : 'uploaded', publish_id: data.publish_id, ...(data.upload_url ? { upload_url: data.upload_url } : {}), ...promised, chunks_done: 0, at: Date.now() });
  return video;
}

/** The chunks not acknowledged yet, of `fetched` (read by this attempt's start) or of the video read again (a resumed command). */
async function uploadRest(d: ActionDeps, ctx: ActionContext<Params>, u: PublishUnit, set: (u: PublishUnit) => Promise<void>, fetched?: Video): Promise<void> {
  if (!u.upload_url) throw new HubError('invalid_vendor_response', 'TikTok sent no upload_url for a FILE_UPLOAD post');
  const video = fetched ?? (await fetchVideo(ctx.params.video_url, { ...d.publish, signal: ctx.signal }));
  // The plan TikTok was told at init, even if TIKTOK_UPLOAD_CHUNK_BYTES changed since (ledgers from before it was recorded: recomputed).
  const plan = u.chunk_size && u.chunk_count ? { chunkSize: u.chunk_size, count: u.chunk_count } : chunking(video.bytes.length, d.publish.chunkBytes);
  if (u.video_size !== undefined && video.bytes.length !== u.video_size) {
    throw new HubError('video_changed', `video_url now serves ${video.bytes.length} bytes; TikTok was told ${u.video_size} at init`);
  }
  const ranges = chunkRanges(video.bytes.length, plan);
  for (let i = u.chunks_done ?? 0; i < ranges.length; i++) {
    const { first, end } = ranges[i]!;
    // A chunk sent again covers the same byte range, so TikTok's copy does not change.
    await d.api.upload(u.upload_url, video.bytes.subarray(first, end), { first, total: video.bytes.length, contentType: video.contentType }, ctx.signal);
    await set({ ...u, phase: i === ranges.length - 1 ? 'uploaded' : 'uploading', chunks_done: i + 1, at: Date.now() });
    ctx.handover?.throwIfAborted(); // handed over: the next owner uploads from the next chunk
  }
}

async function pollToEnd(d: ActionDeps, ctx: ActionContext<Params>, token: string, publishId: string) {
  const deadline = Date.now() + d.publish.timeoutMs;
  let last = 'PROCESSING_UPLOAD';
  for (;;) {
    const hook = d.ledger.get(webhookKey(publishId)) as WebhookStatus | undefined;
    if (hook) return final(publishId, hook.status, hook.post_ids, hook.fail_reason, 'webhook');
    let s: Status;
    try {
      s = await d.api.call<Status>('publish.status', { token, body: { publish_id: publishId }, ...commandCall(ctx) });
    } catch (e) {
      // The attempt's deadline (TIKTOK_ACTION_TIMEOUT_MS) runs from before creator info, the video
      // and the upload, so it can end the polling before TIKTOK_PUBLISH_TIMEOUT_MS does. TikTok has
      // the post by now: the outcome must say so and name it, never fail as a bare timeout that
      // invites a second post.
      if (ctx.signal.aborted && !ctx.handover?.aborted) throw statusUnknown(publishId, last, 'when the attempt\'s time (TIKTOK_ACTION_TIMEOUT_MS) ran out');
      throw e;
    }
    last = s.status ?? last;
    if (last === 'PUBLISH_COMPLETE' || last === 'SEND_TO_USER_INBOX' || last === 'FAILED') return final(publishId, last, (s.publicaly_available_post_id ?? []).map(String), s.fail_reason, 'poll');
    if (Date.now() + d.publish.pollMs > deadline) throw statusUnknown(publishId, last, `after ${Math.round(d.publish.timeoutMs / 1000)} s`);
    await new Promise((r) => setTimeout(r, d.publish.pollMs));
    ctx.handover?.throwIfAborted(); // handed over: the next owner polls on
  }
}

const statusUnknown = (publishId: string, last: string, when: string) =>
  new HubError('publish_status_unknown', `TikTok publish ${publishId} was still ${last} ${when}; the final status will arrive as a post.publish.* event`);

function final(publishId: string, status: string, postIds: string[], failReason: string | undefined, source: 'poll' | 'webhook') {
  if (status === 'FAILED') throw new HubError('publish_failed', `TikTok publish ${publishId} FAILED: ${failReason ?? 'no reason given'}`);
  return { publish_id: publishId, status, post_ids: postIds, status_source: source };
}

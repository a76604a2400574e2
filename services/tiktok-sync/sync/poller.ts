import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import { DEFAULT_VIDEO_FIELDS, videoSchema, type Video } from '../../../shared/connectors/catalog/tiktok.ts';
import type { EventCodec } from '../../../shared/events/codec.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import type { TikTokApi } from '../api/client.ts';
import { AccessTokenInvalid } from '../api/errors.ts';
import { tiktokEvent } from '../events.ts';
import type { FencedWriter, PlacedRecord as Placed } from '../../../shared/bus/types.ts';
import type { Connection } from '../state/connections.ts';
import { seenKey, VIDEOS_TOPIC, videoVersion, type Seen } from '../state/videos.ts';
import { readTokens } from '../tokens/vault.ts';

export interface PollDeps {
  api: TikTokApi;
  store: SecretStore;
  codec: EventCodec;
  logger: Logger;
  seen: KafkaTable<Seen>;
  maxPages: number;
  onVideos?: (n: number) => void;
}

export type PollResult = { ok: true; pages: number; published: number } | { ok: false; reason: 'token_invalid' | 'not_connected' };

/**
 * One poll of a connected account, by its owner: pages of /v2/video/list/ newest first; each
 * page's new or changed videos become `video.created` / `video.updated` events, written in one
 * transaction with their seen-state (in the owner's partition). No cursor is kept: the next poll
 * starts from the newest page again and skips what the seen-state holds, so a poll cut short by a
 * crash never publishes a video twice at the same version.
 */
export async function pollVideos(d: PollDeps, writer: FencedWriter, partition: number, c: Connection, signal: AbortSignal): Promise<PollResult> {
  const tokens = await readTokens(d.store, c.workspace_id);
  if (!tokens || tokens.open_id !== c.open_id) return { ok: false, reason: 'not_connected' };
  if (tokens.access_expires_at <= Date.now()) return { ok: false, reason: 'token_invalid' };
  let cursor: number | undefined;
  let published = 0;
  let pages = 0;
  for (; pages < d.maxPages && !signal.aborted; ) {
    let page: { videos?: unknown[]; cursor?: number; has_more?: boolean };
    try {
      page = await d.api.call('video.list', { token: tokens.access_token, query: { fields: DEFAULT_VIDEO_FIELDS.join(',') }, body: { max_count: 20, ...(cursor !== undefined ? { cursor } : {}) }, signal });
    } catch (e) {
      if (e instanceof AccessTokenInvalid) return { ok: false, reason: 'token_invalid' };
      throw e;
    }
    pages++;
    const videos = (page.videos ?? []).map((v) => videoSchema.parse(v));
    published += await publishChanged(d, writer, partition, c, videos);
    if (!page.has_more || page.cursor === undefined) break;
    cursor = page.cursor;
  }
  return { ok: true, pages, published };
}

async function publishChanged(d: PollDeps, writer: FencedWriter, partition: number, c: Connection, videos: Video[]): Promise<number> {
  const placed: Placed[] = [];
  const applied: [string, Seen][] = [];
  const now = Date.now();
  for (const video of videos) {
    const key = seenKey(c.workspace_id, c.open_id, video.id);
    const version = videoVersion(video);
    const prev = d.seen.get(key);
    if (prev?.version === version) continue;
    const payload = { open_id: c.open_id, video, version, ...(prev ? { previous_version: prev.version } : {}), seen_at: new Date(now).toISOString() };
    const ev = await tiktokEvent(d.codec, { workspaceId: c.workspace_id, type: prev ? 'video.updated' : 'video.created', payload, idempotencyKey: `${c.open_id}:${video.id}:${version}`, key: video.id });
    const seen: Seen = { version, event_id: ev.eventId, at: now };
    placed.push({ record: ev.record }, { record: { topic: VIDEOS_TOPIC, key, value: Buffer.from(JSON.stringify(seen)) }, partition });
    applied.push([key, seen]);
  }
  if (placed.length === 0) return 0;
  await writer.send(placed);
  for (const [k, v] of applied) d.seen.applyLocal(k, v);
  d.onVideos?.(applied.length);
  return applied.length;
}

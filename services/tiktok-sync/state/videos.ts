import { createHash } from 'node:crypto';
import { z } from 'zod';
import { KafkaTable, jsonValue } from '../../../shared/bus/table/table.ts';
import { topics } from '../../../shared/bus/topics.ts';
import type { TableHost } from '../../../shared/bus/table/table.ts';
import type { Video } from '../../../shared/connectors/catalog/tiktok.ts';

/**
 * What polling has already published, per video: `ionflux.state.tiktok-videos` (compacted), keyed
 * `<workspace>:<open_id>:<video_id>`, value the version published. A poll that finds the same
 * version publishes nothing; a new video is `video.created`, a changed one `video.updated`.
 *
 * "The same video" means the same content and the same counts: the version hashes every field
 * TikTok returned except cover_image_url (a signed CDN link that changes on every call) and
 * embed_html (derived from the id). A like or a view therefore makes a new version; that is the
 * data agents ask for. Records for one workspace are written into the partition its connection
 * lives in (see owner/partitions.ts), so the owner can tell when it has read them all.
 */
export const seenSchema = z.object({ version: z.string(), event_id: z.string(), at: z.number() });
export type Seen = z.infer<typeof seenSchema>;

export const VIDEOS_TOPIC = topics.state('tiktok-videos');
export const seenKey = (ws: string, openId: string, videoId: string) => `${ws}:${openId}:${videoId}`;

const UNVERSIONED = new Set(['cover_image_url', 'embed_html']);

/** A short digest of the video's versioned fields, key order independent. */
export function videoVersion(v: Video): string {
  const fields = Object.keys(v).filter((k) => !UNVERSIONED.has(k)).sort();
  return createHash('sha256').update(JSON.stringify(fields.map((k) => [k, (v as Record<string, unknown>)[k]]))).digest('hex').slice(0, 16);
}

export async function openSeenVideos(rt: TableHost, onChange?: (key: string, value: Seen | undefined) => void): Promise<KafkaTable<Seen>> {
  const t = new KafkaTable<Seen>({ ...rt, topic: VIDEOS_TOPIC, parse: jsonValue((v) => seenSchema.parse(v)), onChange });
  await t.start(120_000);
  return t;
}

import { z } from 'zod';
import { KafkaTable, jsonValue } from '../../../shared/bus/table/table.ts';
import { topics } from '../../../shared/bus/topics.ts';
import type { TableHost } from '../../../shared/bus/table/table.ts';

/**
 * The ledger of `videos.publish`, compacted `ionflux.state.tiktok-publishes`:
 * - `cmd:<workspace>:<command_id>`: the units of one command. `initializing` is written (and
 *   acknowledged) before the init call, `initialized` with the publish id right after it,
 *   `uploading` as chunks are acknowledged; a resumed command never calls init again, and uploads
 *   with the chunk plan recorded at init.
 * - `pub:<publish_id>`: a final status learned from a post.publish.* webhook (lifecycle.ts), which
 *   ends the status polling of the command that owns that publish id.
 */
export const unitSchema = z.object({
  phase: z.enum(['initializing', 'initialized', 'uploading', 'uploaded']),
  publish_id: z.string().optional(),
  upload_url: z.string().optional(),
  chunks_done: z.number().int().nonnegative().optional(),
  /** FILE_UPLOAD: the size and chunk plan TikTok was told at init, which every chunk must follow. */
  video_size: z.number().int().nonnegative().optional(),
  chunk_size: z.number().int().positive().optional(),
  chunk_count: z.number().int().positive().optional(),
  at: z.number(),
});
export const webhookStatusSchema = z.object({ status: z.enum(['PUBLISH_COMPLETE', 'FAILED', 'SEND_TO_USER_INBOX']), fail_reason: z.string().optional(), post_ids: z.array(z.string()), at: z.number() });
export const ledgerSchema = z.union([unitSchema, webhookStatusSchema]);
export type PublishUnit = z.infer<typeof unitSchema>;
export type WebhookStatus = z.infer<typeof webhookStatusSchema>;
export type LedgerEntry = z.infer<typeof ledgerSchema>;

export const unitKey = (ws: string, commandId: string) => `cmd:${ws}:${commandId}`;
export const webhookKey = (publishId: string) => `pub:${publishId}`;

export async function openPublishLedger(rt: TableHost): Promise<KafkaTable<LedgerEntry>> {
  const t = new KafkaTable<LedgerEntry>({
    ...rt,
    topic: topics.state('tiktok-publishes'),
    parse: jsonValue((v) => ledgerSchema.parse(v)),
    // Finished publishes matter only while their command may still be redelivered.
    expire: { afterMs: 7 * 86_400_000, at: (e) => e.at },
  });
  await t.start(120_000);
  return t;
}

import { z } from 'zod';
import { KafkaTable, jsonValue, type TableHost } from '../../../shared/bus/table/table.ts';
import { topics } from '../../../shared/bus/topics.ts';

/**
 * Sync bookkeeping in the compacted `ionflux.state.shopify-sync`, one key per fact:
 * - `run:<ws>:<run id>`: a sync in progress (a command's id, or a scheduled run's): the entity, the
 *   cursor after the last page appended to the inbox and the count so far. A sync restarted after
 *   a crash resumes from it; it is deleted when the run completes.
 * - `poll:<ws>:<entity>`: the incremental poll's watermark (the newest `updated_at` appended) and
 *   the entity versions (`<ordering key>@<body digest>`) seen at exactly that time, which the next
 *   poll (`updated_at:>=`) skips; another version in the same second is not skipped.
 * - `full:<ws>:<entity>`: when the last full sync of that entity completed (the nightly schedule).
 * - `customer:<ws>:<customer id>`: that a customer was synced and at which version: what
 *   customers/data_request reports and customers/redact tombstones.
 * No entity content is kept here; entities travel through the inbox to their event topics.
 */
export const runSchema = z.object({
  kind: z.literal('run'),
  entity: z.string(),
  mode: z.enum(['pages', 'bulk']),
  since: z.string().optional(),
  cursor: z.string().nullable(),
  count: z.number(),
  pages: z.number(),
  started_at: z.number(),
  bulk_id: z.string().optional(),
  max_updated_at: z.string().optional(),
  /** The entity versions (`<ordering key>@<body digest>`) seen at exactly max_updated_at (the next poll's `>=` sees them again). */
  newest_ids: z.array(z.string()).optional(),
  updated_at: z.number(),
});
const pollSchema = z.object({ kind: z.literal('poll'), watermark: z.string(), ids: z.array(z.string()).optional(), at: z.number() });
const fullSchema = z.object({ kind: z.literal('full'), at: z.number() });
const customerSchema = z.object({ kind: z.literal('customer'), shop: z.string(), updated_at: z.string().nullable(), synced_at: z.number() });
export const syncStateSchema = z.discriminatedUnion('kind', [runSchema, pollSchema, fullSchema, customerSchema]);
export type SyncState = z.infer<typeof syncStateSchema>;
export type RunCheckpoint = z.infer<typeof runSchema>;

export const SYNC_STATE_TOPIC = topics.state('shopify-sync');
export const keys = {
  run: (ws: string, runId: string) => `run:${ws}:${runId}`,
  poll: (ws: string, entity: string) => `poll:${ws}:${entity}`,
  full: (ws: string, entity: string) => `full:${ws}:${entity}`,
  customer: (ws: string, id: string) => `customer:${ws}:${id}`,
};

/** Every key this table holds for a workspace (shop/redact and uninstall tombstone them all). */
export const keysOfWorkspace = (table: KafkaTable<SyncState>, ws: string) => table.entries().map(([k]) => k).filter((k) => k.split(':')[1] === ws);

export async function openSyncState(rt: TableHost): Promise<KafkaTable<SyncState>> {
  const t = new KafkaTable<SyncState>({ ...rt, topic: SYNC_STATE_TOPIC, parse: jsonValue((v) => syncStateSchema.parse(v)) });
  await t.start(120_000);
  return t;
}

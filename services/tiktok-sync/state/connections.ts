import { z } from 'zod';
import { KafkaTable, jsonValue } from '../../../shared/bus/table/table.ts';
import { topics } from '../../../shared/bus/topics.ts';
import type { TableHost } from '../../../shared/bus/table/table.ts';

/**
 * One record per connected workspace, keyed by workspace id, in the compacted
 * `ionflux.state.tiktok-connections`: which TikTok account, when its tokens expire, whether it
 * needs re-authorization, and who is refreshing it. No token is in here (they live in the secret
 * store). The partition holding a workspace's record decides which instance owns its refreshes
 * and polling (see owner/partitions.ts).
 *
 * `issued_at` orders generations of tokens: every connect and every refresh sets it to the time
 * the tokens were issued, so a record carrying an older `issued_at` than one already seen is stale.
 */
export const connectionSchema = z.object({
  workspace_id: z.string(),
  open_id: z.string(),
  scope: z.array(z.string()),
  status: z.enum(['active', 'needs_reauthorization']),
  issued_at: z.number(),
  access_expires_at: z.number(),
  refresh_expires_at: z.number(),
  /** An owner took the refresh of this generation at `since`; its result is the next record. */
  refreshing: z.object({ by: z.string(), since: z.number() }).optional(),
  /** A command found this generation's access token refused; the owner refreshes at once. */
  refresh_requested: z.object({ at: z.number(), by: z.string() }).optional(),
  reason: z.string().optional(),
  updated_at: z.number(),
});
export type Connection = z.infer<typeof connectionSchema>;

export const CONNECTIONS_TOPIC = topics.state('tiktok-connections');
export const parseConnection = jsonValue((v) => connectionSchema.parse(v));

export async function openConnections(rt: TableHost, onChange?: (key: string, value: Connection | undefined) => void): Promise<KafkaTable<Connection>> {
  const t = new KafkaTable<Connection>({ ...rt, topic: CONNECTIONS_TOPIC, parse: parseConnection, onChange });
  await t.start(120_000);
  return t;
}

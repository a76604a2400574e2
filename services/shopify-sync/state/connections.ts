import { z } from 'zod';
import { KafkaTable, jsonValue, type TableHost } from '../../../shared/bus/table/table.ts';
import { topics } from '../../../shared/bus/topics.ts';

/**
 * One record per installed workspace, keyed by workspace id, in the compacted
 * `ionflux.state.shopify-connections`: which shop, its scopes, when its token expires. No token
 * is in here (the secret store holds it). The partition holding a workspace's record decides
 * which instance polls that shop (bus.own); a tombstone (uninstall, shop/redact) stops it.
 */
export const connectionSchema = z.object({
  workspace_id: z.string(),
  shop: z.string(),
  scope: z.array(z.string()),
  status: z.enum(['active', 'needs_reauthorization']),
  issued_at: z.number(),
  access_expires_at: z.number(),
  installed_at: z.number(),
  reason: z.string().optional(),
  updated_at: z.number(),
});
export type Connection = z.infer<typeof connectionSchema>;

export const CONNECTIONS_TOPIC = topics.state('shopify-connections');
export const parseConnection = jsonValue((v) => connectionSchema.parse(v));

export const connectionRecord = (c: Connection) => ({ topic: CONNECTIONS_TOPIC, key: c.workspace_id, value: Buffer.from(JSON.stringify(c)) });

export async function openConnections(rt: TableHost): Promise<KafkaTable<Connection>> {
  const t = new KafkaTable<Connection>({ ...rt, topic: CONNECTIONS_TOPIC, parse: parseConnection });
  await t.start(120_000);
  return t;
}

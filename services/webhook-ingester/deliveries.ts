import { z } from 'zod';
import { KafkaTable, jsonValue, OWNERS_TABLE_FETCH, type TableHost } from '../../shared/bus/table/table.ts';
import { topics } from '../../shared/bus/topics.ts';
import { INBOX_PREFIX, INBOX_TOPIC } from '../../shared/ingest/inbox.ts';

/**
 * What became of each vendor delivery, keyed `<source>:<account>:<delivery-id>`. Written in the
 * same Kafka transaction as the event itself, so after any crash the log and the topics agree:
 * a delivery is either published and remembered, or neither.
 */
export const deliverySchema = z.object({
  eventId: z.string(),
  /** stale: older than the version of its entity already published, so no event (processor.ts). */
  outcome: z.enum(['published', 'dead_lettered', 'stale']),
  reason: z.string().optional(),
  at: z.number(),
});
export type Delivery = z.infer<typeof deliverySchema>;
export type DeliveryLog = KafkaTable<Delivery>;

export const DELIVERIES_TOPIC = topics.state('webhook-deliveries');
export const VERSIONS_TOPIC = topics.state('entity-versions');

/**
 * The processor's state topics for an inbox: the hub's own for `ionflux.inbox.webhooks`, and
 * topics of its own for any other inbox (IONFLUX_INBOX_TOPIC: a bench or a test), so a separate
 * hub on the same brokers never adds to the running hub's state.
 */
export function stateTopicsFor(inboxTopic: string): { deliveries: string; versions: string } {
  if (inboxTopic === INBOX_TOPIC) return { deliveries: DELIVERIES_TOPIC, versions: VERSIONS_TOPIC };
  const suffix = inboxTopic.slice(INBOX_PREFIX.length).replace(/[._]/g, '-');
  return { deliveries: topics.state(`webhook-deliveries-${suffix}`), versions: topics.state(`entity-versions-${suffix}`) };
}

/** Markers older than the dedupe window are not kept in memory (the topic keeps them 7 days). */
export async function openDeliveryLog(rt: TableHost, dedupeWindowMs: number, topic = DELIVERIES_TOPIC): Promise<DeliveryLog> {
  const table = new KafkaTable<Delivery>({ ...rt, topic, parse: jsonValue((v) => deliverySchema.parse(v)), expire: { afterMs: dedupeWindowMs, at: (d) => d.at }, fetch: OWNERS_TABLE_FETCH });
  await table.start(120_000);
  return table;
}

/** A remembered delivery, unless it is older than the dedupe window. */
export function seenWithin(log: DeliveryLog, key: string, windowMs: number, now = Date.now()): Delivery | undefined {
  const d = log.get(key);
  return d && now - d.at <= windowMs ? d : undefined;
}

/** A payload's `updated_at` (a parseable date), the version of its entity. */
export function entityVersion(payload: unknown): string | undefined {
  const v = (payload as { updated_at?: unknown } | null)?.updated_at;
  return typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? v : undefined;
}

/** The latest `updated_at` published per entity (`<source>:<account>:<entity>:<id>`), so older updates are not published after it. */
export const entityVersionSchema = z.object({
  version: z.string(),
  eventId: z.string(),
  /** The event's action (`updated`, `paid`, ...) and whether a webhook or a poll brought it (older records: neither). */
  action: z.string().optional(),
  origin: z.enum(['webhook', 'poll']).optional(),
  /** A poll's: the digest of the body published (another poll of the same second with another body is another version). */
  digest: z.string().optional(),
});
export type EntityVersion = z.infer<typeof entityVersionSchema>;
export type EntityVersions = KafkaTable<EntityVersion>;

/**
 * Versions older than `keepMs` (by the vendor's own updated_at) are forgotten in memory: an
 * update arriving later than that behind a newer one is no longer recognised as stale.
 */
export async function openEntityVersions(rt: TableHost, keepMs = 30 * 24 * 3600_000, topic = VERSIONS_TOPIC): Promise<EntityVersions> {
  const table = new KafkaTable<EntityVersion>({ ...rt, topic, parse: jsonValue((v) => entityVersionSchema.parse(v)), expire: { afterMs: keepMs, at: (v) => Date.parse(v.version) }, fetch: OWNERS_TABLE_FETCH });
  await table.start(120_000);
  return table;
}

import { z } from 'zod';
import { KafkaTable, jsonValue, type TableHost } from '../../shared/bus/table/table.ts';
import { topics } from '../../shared/bus/topics.ts';

/**
 * What became of each vendor delivery, keyed `<source>:<account>:<delivery-id>`. Written in the
 * same Kafka transaction as the event itself, so after any crash the log and the topics agree:
 * a delivery is either published and remembered, or neither.
 */
export const deliverySchema = z.object({
  eventId: z.string(),
  outcome: z.enum(['published', 'dead_lettered']),
  reason: z.string().optional(),
  at: z.number(),
});
export type Delivery = z.infer<typeof deliverySchema>;
export type DeliveryLog = KafkaTable<Delivery>;

export const DELIVERIES_TOPIC = topics.state('webhook-deliveries');

/** Markers older than the dedupe window are not kept in memory (the topic keeps them 7 days). */
export async function openDeliveryLog(rt: TableHost, dedupeWindowMs: number): Promise<DeliveryLog> {
  const table = new KafkaTable<Delivery>({ ...rt, topic: DELIVERIES_TOPIC, parse: jsonValue((v) => deliverySchema.parse(v)), expire: { afterMs: dedupeWindowMs, at: (d) => d.at } });
  await table.start(120_000);
  return table;
}

/** A remembered delivery, unless it is older than the dedupe window. */
export function seenWithin(log: DeliveryLog, key: string, windowMs: number, now = Date.now()): Delivery | undefined {
  const d = log.get(key);
  return d && now - d.at <= windowMs ? d : undefined;
}

/** The latest `updated_at` published per entity (`<source>:<account>:<entity>:<id>`), to flag stale updates. */
export const entityVersionSchema = z.object({
  version: z.string(),
  eventId: z.string(),
  /** The event's action (`updated`, `paid`, ...) and whether a webhook or a poll brought it (older records: neither). */
  action: z.string().optional(),
  origin: z.enum(['webhook', 'poll']).optional(),
});
export type EntityVersion = z.infer<typeof entityVersionSchema>;
export type EntityVersions = KafkaTable<EntityVersion>;

/**
 * Versions older than `keepMs` (by the vendor's own updated_at) are forgotten in memory: an
 * update arriving later than that behind a newer one is no longer flagged stale.
 */
export async function openEntityVersions(rt: TableHost, keepMs = 30 * 24 * 3600_000): Promise<EntityVersions> {
  const table = new KafkaTable<EntityVersion>({ ...rt, topic: topics.state('entity-versions'), parse: jsonValue((v) => entityVersionSchema.parse(v)), expire: { afterMs: keepMs, at: (v) => Date.parse(v.version) } });
  await table.start(120_000);
  return table;
}

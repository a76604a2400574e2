import { z } from 'zod';
import { KafkaTable, jsonValue } from '../../shared/bus/table.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { Runtime } from '../../shared/runtime.ts';

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
export async function openDeliveryLog(rt: Pick<Runtime, 'kafka' | 'bus' | 'provisioner' | 'logger'>, dedupeWindowMs: number): Promise<DeliveryLog> {
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
export const entityVersionSchema = z.object({ version: z.string(), eventId: z.string() });
export type EntityVersions = KafkaTable<z.infer<typeof entityVersionSchema>>;

export async function openEntityVersions(rt: Pick<Runtime, 'kafka' | 'bus' | 'provisioner' | 'logger'>): Promise<EntityVersions> {
  const table = new KafkaTable({ ...rt, topic: topics.state('entity-versions'), parse: jsonValue((v) => entityVersionSchema.parse(v)) });
  await table.start(120_000);
  return table;
}

import type { Bus, IncomingRecord, OutgoingRecord, RecordAck } from '../bus/types.ts';

/**
 * The ingest inbox (docs/webhooks.md, "ingest v2"): every verified vendor delivery, and every
 * entity a sync worker polls, is first appended here as it came (raw bytes and the vendor headers
 * mapping needs). The ingester's processor (one owner per partition) turns inbox records into
 * events, exactly once, in consume-transform-produce transactions. Appending is the point of
 * durability: a webhook is answered 2xx once its append is acknowledged.
 *
 * Records are keyed by `inboxKey`, so every retry of a delivery and every delivery of one entity
 * land on one partition, whichever edge or worker appended them.
 */
export const INBOX_TOPIC = 'ionflux.inbox.webhooks';
export const INBOX_PREFIX = 'ionflux.inbox.';
// Set IONFLUX_INBOX_TOPIC (shared/config.ts) to run a separate hub on the same brokers: its
// processors then consume that topic in a group of their own (tests do this).

/** The hub's own headers on an inbox record; vendor headers keep their own (lower-cased) names. */
export const INBOX_HEADERS = {
  /** The vendor's route under /webhooks/ that received it (`shopify`, `tiktok`, `email/sendgrid`, `whatsapp`, `generic`). */
  route: 'ionflux.inbox.route',
  /** The route's path parameter (generic endpoint id, SendGrid account), when it has one. */
  param: 'ionflux.inbox.param',
  /** Milliseconds since the epoch when the hub received (or polled) it. */
  receivedAt: 'ionflux.inbox.received_at',
  /** `webhook` (a verified vendor delivery) or `poll` (an entity a sync worker read from the vendor's API). */
  origin: 'ionflux.inbox.origin',
  /**
   * The edge's reading of a verified delivery of one event, so the processor need not parse and
   * validate the body again: JSON of its delivery id, account, entity, action, ordering key and
   * entity version (services/webhook-ingester/edge.ts `edgeReading`). Absent: the processor maps the body.
   */
  mapped: 'ionflux.inbox.mapped',
  /**
   * A dead letter put back by `ionflux dlq replay` (`<partition>:<offset>` on the dead-letter
   * topic): the processor takes it again although its delivery was marked dead-lettered.
   */
  replayedFrom: 'ionflux.inbox.replayed_from',
} as const;

export type InboxOrigin = 'webhook' | 'poll';

export interface InboxDelivery {
  route: string;
  param?: string;
  origin: InboxOrigin;
  receivedAt: Date;
  /** Lower-cased vendor header names and values (only those mapping reads). */
  headers: Record<string, string | undefined>;
  body: Buffer;
  /** The partition key: `inboxKey(...)`. */
  key: string;
  /** INBOX_HEADERS.mapped, when the appender read the body already. */
  mapped?: string;
  /** INBOX_HEADERS.replayedFrom. */
  replayedFrom?: string;
}

/**
 * The key of an inbox record: the entity's ordering key for a delivery of one entity, else the
 * account (`<source>:<account>`), so a delivery and its retries share it.
 */
export function inboxKey(source: string, account: string, entity?: string, orderingKey?: string): string {
  return entity !== undefined && orderingKey !== undefined ? `${source}:${account}:${entity}:${orderingKey}` : `${source}:${account}`;
}

export function inboxRecord(d: InboxDelivery, topic = INBOX_TOPIC): OutgoingRecord {
  const headers: Record<string, string> = {
    [INBOX_HEADERS.route]: d.route,
    [INBOX_HEADERS.origin]: d.origin,
    [INBOX_HEADERS.receivedAt]: String(d.receivedAt.getTime()),
  };
  if (d.param !== undefined) headers[INBOX_HEADERS.param] = d.param;
  if (d.mapped !== undefined) headers[INBOX_HEADERS.mapped] = d.mapped;
  if (d.replayedFrom !== undefined) headers[INBOX_HEADERS.replayedFrom] = d.replayedFrom;
  for (const k in d.headers) {
    const v = d.headers[k];
    if (v !== undefined && !k.startsWith('ionflux.')) headers[k] = v;
  }
  return { topic, key: d.key, value: d.body, headers };
}

/** Appends deliveries (to `topic`, the env's IONFLUX_INBOX_TOPIC); resolves once Kafka acknowledged every one (acks=all). */
export function appendToInbox(bus: Bus, deliveries: InboxDelivery[], opts: { timeoutMs?: number; topic?: string } = {}): Promise<RecordAck[]> {
  // The key as order key: on a bus with several producer lanes, one entity's appends share a lane, so they land in order.
  return bus.publishAtomic(deliveries.map((d) => inboxRecord(d, opts.topic)), { timeoutMs: opts.timeoutMs, orderKey: deliveries[0]?.key });
}

/** Reads an inbox record back; null when it is not one (no route header). */
export function fromInboxRecord(r: IncomingRecord): InboxDelivery | null {
  const route = r.headers[INBOX_HEADERS.route];
  if (!route || !r.value) return null;
  const headers: Record<string, string> = {};
  for (const k in r.headers) if (!k.startsWith('ionflux.')) headers[k] = r.headers[k]!;
  const at = Number(r.headers[INBOX_HEADERS.receivedAt]);
  return {
    route,
    param: r.headers[INBOX_HEADERS.param],
    origin: r.headers[INBOX_HEADERS.origin] === 'poll' ? 'poll' : 'webhook',
    receivedAt: new Date(Number.isFinite(at) ? at : Number(r.timestamp)),
    headers,
    body: r.value,
    key: r.key?.toString() ?? '',
    ...(r.headers[INBOX_HEADERS.mapped] !== undefined ? { mapped: r.headers[INBOX_HEADERS.mapped] } : {}),
    ...(r.headers[INBOX_HEADERS.replayedFrom] !== undefined ? { replayedFrom: r.headers[INBOX_HEADERS.replayedFrom] } : {}),
  };
}

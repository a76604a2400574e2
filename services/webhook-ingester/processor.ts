import { createHash } from 'node:crypto';
import { z } from 'zod';
import { deadLetterRecord } from '../../shared/bus/dead-letter.ts';
import { topics } from '../../shared/bus/topics.ts';
import { HubError } from '../../shared/errors.ts';
import type { Bus, IncomingRecord, OutgoingRecord, Subscription, TransformOptions } from '../../shared/bus/types.ts';
import type { EventCodec } from '../../shared/events/codec.ts';
import { buildEvent, deterministicEventId, PayloadSchemas, type PlatformEvent } from '../../shared/events/platform-event.ts';
import { EVENT_HEADERS } from '../../shared/events/publisher.ts';
import { fromInboxRecord, INBOX_TOPIC, type InboxDelivery } from '../../shared/ingest/inbox.ts';
import { linkKey, type LinkTable } from '../../shared/links.ts';
import type { Logger } from '../../shared/logger.ts';
import { webhookDeadLetter } from './dead-letter.ts';
import { entityVersion, seenWithin, type Delivery, type DeliveryLog, type EntityVersion, type EntityVersions } from './deliveries.ts';
import { deliveryKey, failedDeliveryKey, parseEdgeReading, SERVICE, type EdgeReading } from './edge.ts';
import { vendorByRoute } from './vendors/index.ts';
import type { RawDelivery, VendorModule } from './vendors/types.ts';

/** What the processor counts (IngesterMetrics' counters, or a forwarder to the thread that serves /metrics). */
export interface ProcessorMetrics {
  processed: { inc(labels: { vendor: string; outcome: string }, n?: number): void };
  committed: { inc(n: number): void };
}

export interface ProcessorDeps {
  bus: Bus;
  codec: EventCodec;
  logger: Logger;
  links: LinkTable;
  deliveries: DeliveryLog;
  versions: EntityVersions;
  metrics: ProcessorMetrics;
  dedupeWindowMs: number;
  /** IONFLUX_INBOX_TOPIC (default ionflux.inbox.webhooks). */
  inboxTopic?: string;
  /** INGESTER_PROCESSOR_FETCH_MIN_BYTES / _MAX_WAIT_MS (see TransformOptions.fetch). */
  fetch?: TransformOptions['fetch'];
}

/**
 * The processors' consumer group on the inbox, which also prefixes their transactional ids
 * (`<group>-<partition>`); another inbox topic gets a group of its own.
 */
export const PROCESSOR_GROUP = `ionflux-${SERVICE}-processor`;
export const processorGroup = (inboxTopic: string) => (inboxTopic === INBOX_TOPIC ? PROCESSOR_GROUP : `${PROCESSOR_GROUP}.${inboxTopic}`);

/** Header on events whose payload carries `updated_at`: its value (consumers that apply state compare it). */
export const VERSION_HEADER = 'ionflux.entity_version';

// The vendor module has checked each payload against its event type's zod schema (written from
// the vendor's published samples); here every family only needs to be a JSON object.
const payloadSchemas = new PayloadSchemas().register('*', z.union([z.looseObject({}), z.array(z.unknown())]));
// An event the edge read (EdgeReading): published as the body's bytes, which the edge checked
// against the vendor's schema, a stricter check than the one above; nothing is parsed here.
const readByEdge = new PayloadSchemas().register('*', z.undefined());

/** One event of a delivery: as the vendor module maps it (payload parsed) or as the edge read it (no payload). */
type ToPublish = EdgeReading & { payload?: unknown };

/** The edge's reading of a webhook delivery, if it left one that reads (else the body is mapped here). */
function readingOf(inbox: InboxDelivery, vendor: VendorModule): EdgeReading | undefined {
  if (inbox.mapped === undefined || inbox.origin !== 'webhook' || !vendor.verbatim) return undefined;
  return parseEdgeReading(inbox.mapped);
}

/**
 * The inbox processor: a consumer group on `ionflux.inbox.webhooks` in which each partition has
 * one owner at a time (fenced by its transactional id), so dedupe is exact however many edges
 * append. A batch of a partition becomes, in one transaction with the batch's offsets: its
 * events (and internal copies), delivery markers, entity versions and dead letters. Every retry
 * of a delivery and every delivery of one entity share a partition (the inbox key), so the
 * owner's view of their markers and versions is complete once it caught up with the state topics
 * after taking the partition.
 */
export async function startProcessor(deps: ProcessorDeps): Promise<Subscription> {
  const topic = deps.inboxTopic ?? INBOX_TOPIC;
  await deps.bus.ensureTopics([topic]);
  return deps.bus.transform({
    groupId: processorGroup(topic),
    topic,
    transactionalPrefix: processorGroup(topic),
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
    // The previous owner is fenced by now: whatever it committed is on the state topics.
    onAssigned: async () => void (await Promise.all([deps.deliveries.catchUp(), deps.versions.catchUp(), deps.links.catchUp()])),
    transform: async (records) => {
      const batch = new Batch(deps);
      for (const r of records) await batch.add(r);
      const result = batch.result();
      return { records: result.records, committed: () => (result.committed(), deps.metrics.committed.inc(records.length)) };
    },
  });
}

/** The digest of a polled body (sha256, 16 hex digits), kept with the entity version it published. */
const bodyDigest = (body: Buffer) => createHash('sha256').update(body).digest('hex').slice(0, 16);

/** One batch's output; its markers and versions are seen by the batch's later records, and applied locally once committed. */
class Batch {
  private readonly out: OutgoingRecord[] = [];
  private readonly markers = new Map<string, Delivery>();
  private readonly versions = new Map<string, EntityVersion>();
  private readonly outcomes = new Map<string, number>();
  constructor(private readonly deps: ProcessorDeps) {}

  result() {
    return {
      records: this.out,
      committed: () => {
        for (const [k, v] of this.markers) this.deps.deliveries.applyLocal(k, v);
        for (const [k, v] of this.versions) this.deps.versions.applyLocal(k, v);
        for (const [labels, n] of this.outcomes) {
          const [vendor, outcome] = labels.split(' ') as [string, string];
          this.deps.metrics.processed.inc({ vendor, outcome }, n);
        }
      },
    };
  }

  /** A dead letter replayed by the admin (`ionflux dlq replay`) is taken again, unless it was published since. */
  private seen(key: string, inbox: InboxDelivery): Delivery | undefined {
    const d = this.markers.get(key) ?? seenWithin(this.deps.deliveries, key, this.deps.dedupeWindowMs);
    return inbox.replayedFrom !== undefined && d?.outcome === 'dead_lettered' ? undefined : d;
  }

  private setVersion(entityKey: string, v: EntityVersion): void {
    this.versions.set(entityKey, v);
    this.out.push(this.deps.versions.record(entityKey, v));
  }

  private mark(key: string, marker: Delivery): void {
    this.markers.set(key, marker);
    this.out.push(this.deps.deliveries.record(key, marker));
  }

  /** Counted once the batch is committed. */
  private count(vendor: string, outcome: 'published' | 'duplicate' | 'stale' | 'dead_lettered'): void {
    const labels = `${vendor} ${outcome}`;
    this.outcomes.set(labels, (this.outcomes.get(labels) ?? 0) + 1);
  }

  async add(r: IncomingRecord): Promise<void> {
    const inbox = fromInboxRecord(r);
    const vendor = inbox && vendorByRoute.get(inbox.route);
    if (!inbox || !vendor) return this.unreadable(r, inbox ? `no vendor route ${inbox.route}` : 'not an inbox record');
    const d: RawDelivery = { rawBody: inbox.body, headers: inbox.headers, pathParam: inbox.param, receivedAt: inbox.receivedAt };
    const reading = readingOf(inbox, vendor);
    if (reading) return this.event(vendor, inbox, d, reading, true);
    const mapped = vendor.map(d);
    if (!mapped.ok) {
      const key = failedDeliveryKey(vendor, d);
      if (this.seen(key, inbox)) return this.count(vendor.source, 'duplicate');
      return this.park(vendor, d, key, { code: 'schema_failed', message: mapped.reason }, d.rawBody, inbox);
    }
    for (const ev of mapped.events) await this.event(vendor, inbox, d, { ...ev, version: entityVersion(ev.payload) }, mapped.events.length === 1);
  }

  private async event(vendor: VendorModule, inbox: InboxDelivery, d: RawDelivery, ev: ToPublish, only: boolean): Promise<void> {
    const key = deliveryKey(vendor, ev);
    if (this.seen(key, inbox)) return this.count(vendor.source, 'duplicate');
    let link = this.deps.links.get(linkKey(vendor.source, ev.account));
    // The edge may have seen a link this thread's table has not applied yet: read up to the
    // links topic's end before calling the delivery unlinked.
    if (!link) {
      await this.deps.links.catchUp(5000).catch(() => undefined);
      link = this.deps.links.get(linkKey(vendor.source, ev.account));
    }
    if (!link) return this.deadLetter(vendor, inbox, d, ev, key, only, 'unlinked', `no workspace linked to ${vendor.source} account ${ev.account}`);
    const source = link.source ?? vendor.source;
    // Versions are kept per event topic (entity and action): a late orders/create or orders/paid
    // is not stale behind an orders/updated, nor app/uninstalled behind app/scopes_update.
    const entityKey = `${vendor.source}:${ev.account}:${ev.entity}:${ev.versionKey ?? ev.orderingKey}:${ev.action}`;
    const version = ev.version;
    const latest = this.versions.get(entityKey) ?? this.deps.versions.get(entityKey);
    // A poll's body is the hub's own rendering of one entity version: its digest tells two changes
    // within one second (vendors' updated_at has whole seconds) apart, where updated_at cannot.
    const digest = inbox.origin === 'poll' && only ? bodyDigest(d.rawBody) : undefined;
    const anotherPolledVersion = digest !== undefined && latest?.digest !== undefined && latest.digest !== digest;
    // A poll and a webhook that saw the same version of an entity are one event, whichever came first.
    // Compared as times: a webhook carries the shop's own offset (-05:00), the GraphQL poll UTC (Z).
    if (version !== undefined && latest !== undefined && Date.parse(latest.version) === Date.parse(version) && latest.action === ev.action && (inbox.origin === 'poll' || latest.origin === 'poll') && !anotherPolledVersion) {
      this.mark(key, { eventId: latest.eventId, outcome: 'published', at: Date.now() });
      // The poll's digest of the version a webhook published: a later poll of that second with another body is another version.
      if (digest !== undefined && latest.digest === undefined) this.setVersion(entityKey, { ...latest, digest });
      return this.count(vendor.source, 'duplicate');
    }
    let event: PlatformEvent;
    let topic: string;
    try {
      event = buildEvent(ev.payload === undefined ? readByEdge : payloadSchemas, {
        eventType: `${source}.${ev.entity}.${ev.action}`,
        workspaceId: link.workspaceId,
        source: SERVICE,
        payload: ev.payload,
        rawPayloadJson: only && vendor.verbatim ? d.rawBody.toString('utf8') : undefined,
        idempotencyKey: key,
        correlationId: ev.deliveryId,
        timestamp: d.receivedAt.getTime(),
      });
      topic = topics.event(source, link.workspaceId, ev.entity, ev.action);
    } catch (e) {
      // No event can be made of it (a link naming a reserved source, a topic name over Kafka's
      // limit): retrying the batch would hold every later delivery of this inbox partition.
      if (e instanceof HubError && !e.retryable) return this.deadLetter(vendor, inbox, d, ev, key, only, e.code, e.message);
      throw e;
    }
    // An update older than one already published (a late retry, a poll that read before a newer
    // webhook) never follows the newer one on the topic: its delivery is marked `stale`, no event.
    if (version !== undefined && latest !== undefined && Date.parse(version) < Date.parse(latest.version)) {
      this.mark(key, { eventId: event.event_id, outcome: 'stale', at: Date.now() });
      return this.count(vendor.source, 'stale');
    }
    const headers: Record<string, string> = { [EVENT_HEADERS.eventId]: event.event_id, [EVENT_HEADERS.eventType]: event.event_type, [EVENT_HEADERS.workspace]: link.workspaceId };
    if (version !== undefined) headers[VERSION_HEADER] = version;
    const value = await this.deps.codec.encode(event);
    this.out.push({ topic, key: ev.orderingKey, value, headers });
    // Workers learn of lifecycle events (uninstalled, authorization removed, bounced) on one fixed topic.
    if (vendor.internal?.has(`${ev.entity}.${ev.action}`)) this.out.push({ topic: topics.internal(source), key: link.workspaceId, value, headers });
    if (version !== undefined) {
      this.setVersion(entityKey, { version, eventId: event.event_id, action: ev.action, origin: inbox.origin, ...(digest ? { digest } : {}) });
    }
    this.mark(key, { eventId: event.event_id, outcome: 'published', at: Date.now() });
    this.count(vendor.source, 'published');
  }

  /** An event that cannot be published: logged, then parked (park): never published, never retried. */
  private deadLetter(vendor: VendorModule, inbox: InboxDelivery, d: RawDelivery, ev: ToPublish, key: string, only: boolean, code: string, message: string): void {
    this.deps.logger.warn({ vendor: vendor.source, account: ev.account, reason: code, detail: message }, code === 'unlinked' ? 'delivery for an unlinked account dead-lettered' : 'delivery no event can be made of dead-lettered');
    // One event of a batch is parked as its payload alone, which is not a delivery to replay.
    if (only) this.park(vendor, d, key, { code, message }, d.rawBody, inbox);
    else this.park(vendor, d, key, { code, message }, Buffer.from(JSON.stringify(ev.payload)));
  }

  /**
   * A delivery parked on the dead-letter topic with the reason, marked so its retries are
   * duplicates; with its inbox record when the dead letter holds all of it (it can be replayed).
   */
  private park(vendor: VendorModule, d: RawDelivery, key: string, error: { code: string; message: string }, value: Buffer, inbox?: InboxDelivery): void {
    this.out.push(webhookDeadLetter({ vendor, d, error, value, ...(inbox ? { inbox: { topic: this.deps.inboxTopic ?? INBOX_TOPIC, delivery: inbox } } : {}) }));
    this.mark(key, { eventId: deterministicEventId(key), outcome: 'dead_lettered', reason: error.code, at: Date.now() });
    this.count(vendor.source, 'dead_lettered');
  }

  /** A record no vendor route reads: parked as it came. */
  private unreadable(r: IncomingRecord, reason: string): void {
    this.deps.logger.warn({ partition: r.partition, offset: r.offset, reason }, 'unreadable inbox record dead-lettered');
    this.out.push(deadLetterRecord({ dlqTopic: topics.deadLetter(SERVICE), service: SERVICE, record: r, message: r, error: new HubError('unreadable_inbox_record', reason), attempts: 1 }));
  }
}

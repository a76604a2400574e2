import { z } from 'zod';
import type { Bus } from '../../shared/bus/types.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { OutgoingRecord } from '../../shared/bus/types.ts';
import type { EventCodec } from '../../shared/events/codec.ts';
import { buildEvent, deterministicEventId, PayloadSchemas } from '../../shared/events/platform-event.ts';
import { EVENT_HEADERS } from '../../shared/events/publisher.ts';
import { describeError } from '../../shared/errors.ts';
import { accountProblem, linkKey, type LinkTable } from '../../shared/links.ts';
import type { Logger } from '../../shared/logger.ts';
import { seenWithin, type Delivery, type DeliveryLog, type EntityVersions } from './deliveries.ts';
import { webhookDeadLetter } from './dead-letter.ts';
import type { IngesterMetrics, Outcome } from './metrics.ts';
import { validSecrets, type SecretsFor } from './secrets.ts';
import type { MappedEvent, RawDelivery, VendorModule } from './vendors/types.ts';

export const SERVICE = 'webhook-ingester';

export interface IngestDeps {
  bus: Bus;
  codec: EventCodec;
  logger: Logger;
  links: LinkTable;
  deliveries: DeliveryLog;
  versions: EntityVersions;
  secretsFor: SecretsFor;
  metrics: IngesterMetrics;
  publishTimeoutMs: number;
  dedupeWindowMs: number;
}

export interface IngestResponse {
  status: number;
  body: Record<string, unknown>;
}

// The vendor module has checked each payload against its event type's zod schema (written from
// the vendor's published samples); here every family only needs to be a JSON object.
const payloadSchemas = new PayloadSchemas().register('*', z.union([z.looseObject({}), z.array(z.unknown())]));

// Single-event vendors: publish the body byte-for-byte (JSON.parse would round ids past 2^53).
const VERBATIM: ReadonlySet<string> = new Set(['shopify', 'tiktok', 'generic']);

/** Headers on events whose payload carries `updated_at`: its value, and `true` when older than one already published. */
export const VERSION_HEADER = 'ionflux.entity_version';
export const STALE_HEADER = 'ionflux.stale';

function entityVersion(payload: unknown): string | undefined {
  const v = (payload as { updated_at?: unknown } | null)?.updated_at;
  return typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? v : undefined;
}

const entityChains = new Map<string, Promise<unknown>>();
/**
 * One entity's deliveries are compared one at a time, in arrival order. `fn` only has to queue
 * its publish (same order key, so same producer, so Kafka keeps the order): the next delivery
 * of the entity is compared without waiting for the previous transaction to commit.
 */
async function inEntityOrder(entityKey: string, fn: (entityKey: string) => Promise<void>): Promise<void> {
  const prev = entityChains.get(entityKey) ?? Promise.resolve();
  let queued!: () => void;
  const turn = new Promise<void>((r) => (queued = r));
  entityChains.set(entityKey, turn);
  await prev;
  let unit: Promise<void>;
  try {
    unit = fn(entityKey);
  } finally {
    queued(); // fn has run synchronously up to its publish: the entity's next delivery may go
    if (entityChains.get(entityKey) === turn) entityChains.delete(entityKey);
  }
  return unit;
}

/** Deliveries being published right now, so a concurrent retry waits for the first one's outcome. */
const publishing = new Map<string, Promise<unknown>>();

/**
 * The answers that need neither the body nor a secret, given before either is read: an endpoint id
 * or SendGrid account the link table does not know is 404 (so made-up ids never cause a secret
 * store read), and missing signature headers are 401. Null: go on.
 */
export function precheck(deps: Pick<IngestDeps, 'links' | 'metrics'>, vendor: VendorModule, headers: RawDelivery['headers'], pathParam: string | undefined): IngestResponse | null {
  const count = (outcome: Outcome) => deps.metrics.requests.inc({ vendor: vendor.source, outcome });
  const linked = (kind: 'generic' | 'email', account: string) => !accountProblem(kind, account) && deps.links.get(linkKey(kind, account)) !== undefined;
  if (vendor.source === 'generic' && !linked('generic', pathParam ?? '')) return (count('not_found'), { status: 404, body: { error: 'unknown_endpoint' } });
  if (vendor.source === 'email' && pathParam !== undefined && !linked('email', pathParam)) return (count('not_found'), { status: 404, body: { error: 'unknown_account' } });
  const missing = vendor.requiredHeaders.filter((h) => !headers[h]);
  if (missing.length) return (count('bad_signature'), { status: 401, body: { error: 'invalid_signature', reason: 'missing_headers', missing_headers: missing } });
  return null;
}

/** precheck -> verify -> map -> link -> dedupe -> publish (event + delivery marker in one transaction). */
export async function ingest(deps: IngestDeps, vendor: VendorModule, d: RawDelivery, topicSource?: string): Promise<IngestResponse> {
  const count = (outcome: Outcome) => deps.metrics.requests.inc({ vendor: vendor.source, outcome });
  const early = precheck(deps, vendor, d.headers, d.pathParam);
  if (early) return early;
  let secret;
  try {
    secret = await deps.secretsFor(vendor.source, d.pathParam);
  } catch (e) {
    deps.logger.error({ vendor: vendor.source, err: e }, 'verification secrets unavailable');
    count('unavailable');
    return { status: 503, body: { error: 'unavailable', reason: 'verification secrets unavailable' } };
  }
  if (!secret) {
    if (vendor.source === 'generic') return (count('not_found'), { status: 404, body: { error: 'unknown_endpoint' } });
    if (d.pathParam !== undefined) deps.logger.error({ vendor: vendor.source, account: d.pathParam }, 'no verification key stored for this account (ionflux link email <account> <ws> --verification-key K)');
    else deps.logger.error({ vendor: vendor.source }, 'no verification secret configured for this vendor');
    count('unavailable');
    return { status: 503, body: { error: 'vendor_not_configured' } };
  }
  const verdict = vendor.verify(d, validSecrets(secret, d.receivedAt), d.receivedAt);
  if (!verdict.valid) {
    count('bad_signature');
    return { status: 401, body: { error: 'invalid_signature', reason: verdict.reason, ...(verdict.missingHeaders ? { missing_headers: verdict.missingHeaders } : {}) } };
  }

  const mapped = vendor.map(d);
  if (!mapped.ok) {
    const id = d.headers['x-shopify-webhook-id'] ?? d.headers['webhook-id'] ?? deterministicEventId(d.rawBody.toString('base64'));
    return deadLetterOnce(deps, vendor, d, `${vendor.source}:${d.pathParam ?? ''}:${id}`, 'schema_failed', mapped.reason, count);
  }

  const published: string[] = [];
  const duplicates: string[] = [];
  const deadLettered: string[] = [];
  const units: Promise<void>[] = [];
  for (const ev of mapped.events) {
    const key = `${vendor.source}:${ev.account}:${ev.deliveryId}`;
    units.push(
      once(key, async () => {
        const seen = seenWithin(deps.deliveries, key, deps.dedupeWindowMs);
        if (seen) return void (seen.outcome === 'published' ? duplicates : deadLettered).push(seen.eventId);
        const link = deps.links.get(linkKey(vendor.source, ev.account));
        if (!link) {
          deps.logger.warn({ vendor: vendor.source, account: ev.account }, 'delivery for an unlinked account dead-lettered');
          count('unlinked');
          await publishUnit(deps, key, deadLetterMarker(key, 'unlinked'), [webhookDeadLetter({ vendor, d, error: { code: 'unlinked', message: `no workspace linked to ${vendor.source} account ${ev.account}` }, value: single(mapped.events, d, ev) })], vendor);
          return void deadLettered.push(key);
        }
        const event = await eventRecord(deps, vendor, d, ev, link.workspaceId, topicSource ?? link.source ?? vendor.source, mapped.events.length === 1);
        await inEntityOrder(`${vendor.source}:${ev.account}:${ev.entity}:${ev.orderingKey}`, async (entityKey) => {
          // An update older than one already published is still delivered (nothing lost) but
          // flagged stale, and never becomes the entity's latest version.
          const version = entityVersion(ev.payload);
          const latest = deps.versions.get(entityKey);
          const stale = version !== undefined && latest !== undefined && Date.parse(version) < Date.parse(latest.version);
          const extra = version === undefined || stale ? [] : [deps.versions.record(entityKey, { version, eventId: event.eventId })];
          if (stale) event.record.headers = { ...event.record.headers, [STALE_HEADER]: 'true', [VERSION_HEADER]: version };
          else if (version) event.record.headers = { ...event.record.headers, [VERSION_HEADER]: version };
          const unit = publishUnit(deps, key, { eventId: event.eventId, outcome: 'published', at: Date.now() }, [event.record, ...event.copies, ...extra], vendor, entityKey);
          if (extra.length) {
            // The next delivery of this entity compares against this one at once; should this
            // transaction fail (the vendor then retries it), the version it claimed is given back.
            deps.versions.applyLocal(entityKey, { version: version!, eventId: event.eventId });
            unit.catch(() => deps.versions.get(entityKey)?.eventId === event.eventId && deps.versions.applyLocal(entityKey, latest));
          }
          return unit;
        });
        published.push(event.eventId);
      }),
    );
  }
  const settled = await Promise.allSettled(units.map((u) => withTimeout(u, deps.publishTimeoutMs)));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    deps.logger.warn({ vendor: vendor.source, err: (failed as PromiseRejectedResult).reason }, 'delivery not published; the vendor will retry');
    count('unavailable');
    return { status: 503, body: { error: 'unavailable', reason: 'event store did not acknowledge; retry later' } };
  }
  if (published.length) count('accepted');
  else if (duplicates.length) count('duplicate');
  if (published.length === 0 && duplicates.length === 0) return { status: 202, body: { status: 'dead_lettered', reason: 'unlinked' } };
  return { status: 200, body: { status: published.length ? 'accepted' : 'duplicate', event_ids: [...published, ...duplicates] } };
}

async function deadLetterOnce(deps: IngestDeps, vendor: VendorModule, d: RawDelivery, key: string, code: string, reason: string, count: (o: Outcome) => void): Promise<IngestResponse> {
  count('schema_failed');
  deps.logger.warn({ vendor: vendor.source, reason }, 'verified delivery failed its schema; dead-lettered');
  try {
    await withTimeout(
      once(key, async () => {
        if (seenWithin(deps.deliveries, key, deps.dedupeWindowMs)) return;
        await publishUnit(deps, key, deadLetterMarker(key, code), [webhookDeadLetter({ vendor, d, error: { code, message: reason }, value: d.rawBody })], vendor);
      }),
      deps.publishTimeoutMs,
    );
  } catch (e) {
    count('unavailable');
    deps.logger.warn({ err: describeError(e) }, 'dead letter not acknowledged');
    return { status: 503, body: { error: 'unavailable' } };
  }
  return { status: 202, body: { status: 'dead_lettered', reason: code, detail: reason } };
}

const deadLetterMarker = (key: string, reason: string): Delivery => ({ eventId: deterministicEventId(key), outcome: 'dead_lettered', reason, at: Date.now() });

async function eventRecord(deps: IngestDeps, vendor: VendorModule, d: RawDelivery, ev: MappedEvent, workspaceId: string, source: string, only: boolean) {
  const event = buildEvent(payloadSchemas, {
    eventType: `${source}.${ev.entity}.${ev.action}`,
    workspaceId,
    source: 'webhook-ingester',
    payload: ev.payload,
    rawPayloadJson: only && VERBATIM.has(vendor.source) ? d.rawBody.toString('utf8') : undefined,
    idempotencyKey: `${vendor.source}:${ev.account}:${ev.deliveryId}`,
    correlationId: ev.deliveryId,
    timestamp: d.receivedAt.getTime(),
  });
  const value = await deps.codec.encode(event);
  const headers = { [EVENT_HEADERS.eventId]: event.event_id, [EVENT_HEADERS.eventType]: event.event_type, [EVENT_HEADERS.workspace]: workspaceId };
  const record: OutgoingRecord = { topic: topics.event(source, workspaceId, ev.entity, ev.action), key: ev.orderingKey, value, headers };
  // Workers learn of lifecycle events (uninstalled, authorization removed, bounced) on one fixed topic.
  const copies: OutgoingRecord[] = vendor.internal?.has(`${ev.entity}.${ev.action}`) ? [{ topic: topics.internal(source), key: workspaceId, value, headers }] : [];
  return { eventId: event.event_id, record, copies };
}

/** The records and the delivery marker land in one transaction; the marker is applied locally after. */
async function publishUnit(deps: IngestDeps, key: string, marker: Delivery, records: OutgoingRecord[], vendor: VendorModule, orderKey?: string): Promise<void> {
  const end = deps.metrics.publishSeconds.startTimer({ vendor: vendor.source });
  await deps.bus.publishAtomic([...records, deps.deliveries.record(key, marker)], { orderKey });
  end();
  deps.deliveries.applyLocal(key, marker);
}

/**
 * Runs `work` for a delivery key unless it is already running; a concurrent duplicate waits for
 * the running one and then runs `work` again, which finds the marker and answers "duplicate".
 */
async function once(key: string, work: () => Promise<void>): Promise<void> {
  for (let running = publishing.get(key); running; running = publishing.get(key)) await running.catch(() => undefined);
  const p = work().finally(() => publishing.delete(key));
  publishing.set(key, p);
  return p;
}

function single(events: MappedEvent[], d: RawDelivery, ev: MappedEvent): Buffer {
  return events.length === 1 ? d.rawBody : Buffer.from(JSON.stringify(ev.payload));
}

/** Rejects after `ms` without cancelling `p`: the record may still land, and a retry then dedupes. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`no acknowledgement within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

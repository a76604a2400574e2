import { z } from 'zod';
import type { Bus } from '../../shared/bus/types.ts';
import { deterministicEventId } from '../../shared/events/platform-event.ts';
import { SEGMENT } from '../../shared/ids.ts';
import { appendToInbox, inboxKey, type InboxDelivery } from '../../shared/ingest/inbox.ts';
import { accountProblem, linkKey, type LinkTable } from '../../shared/links.ts';
import type { Logger } from '../../shared/logger.ts';
import { entityVersion } from './deliveries.ts';
import type { IngesterMetrics, Outcome } from './metrics.ts';
import { validSecrets, type SecretsFor } from './secrets.ts';
import type { MapResult, MappedEvent, RawDelivery, VendorModule } from './vendors/types.ts';

export const SERVICE = 'webhook-ingester';

export interface EdgeDeps {
  bus: Bus;
  logger: Logger;
  links: LinkTable;
  secretsFor: SecretsFor;
  metrics: IngesterMetrics;
  publishTimeoutMs: number;
  /** Answers of deliveries this process appended lately, so its retries answer `duplicate` (bounded). */
  recent: RecentAnswers;
  /** IONFLUX_INBOX_TOPIC (default ionflux.inbox.webhooks). */
  inboxTopic?: string;
}

export interface IngestResponse {
  status: number;
  body: Record<string, unknown>;
}

/**
 * The edge's answers to deliveries it appended, by delivery identity: the latest ones, at least
 * `max`/2 and at most `max` of them (oldest forgotten first). Only an answer: the inbox processor dedupes
 * exactly, whatever this process remembers, so a retry this process does not remember is appended
 * again and dropped there.
 */
export class RecentAnswers {
  // Answers kept as their JSON text: one string per entry instead of a small object graph, so a
  // full map costs the old generation little to keep and to churn. Two generations of max/2: when
  // the young one is full the old one is dropped whole. Evicting one oldest key of one big Map per
  // answer cost 9.6 us a call (V8 keeps deleted entries as holes that every new iterator walks
  // until the next rehash) against 0.6 us this way: 2.8% of the edge thread in make bench-ingest.
  private young = new Map<string, string>();
  private old = new Map<string, string>();
  private readonly running = new Map<string, Promise<IngestResponse>>();
  private readonly half: number;
  constructor(max = 20_000) {
    this.half = Math.max(1, Math.ceil(max / 2));
  }

  get(key: string): IngestResponse | undefined {
    const a = this.young.get(key) ?? this.old.get(key);
    return a === undefined ? undefined : (JSON.parse(a) as IngestResponse);
  }

  set(key: string, r: IngestResponse): void {
    this.young.set(key, JSON.stringify(r));
    if (this.young.size < this.half) return;
    this.old = this.young;
    this.young = new Map();
  }

  /** Runs `work` for `key` unless it is running; a concurrent duplicate waits for it, then runs (and finds the answer). */
  async once(key: string, work: () => Promise<IngestResponse>): Promise<IngestResponse> {
    for (let r = this.running.get(key); r; r = this.running.get(key)) await r.catch(() => undefined);
    const p = work().finally(() => this.running.delete(key));
    this.running.set(key, p);
    return p;
  }
}

/**
 * The answers that need neither the body nor a secret, given before either is read: a route param
 * naming an account the link table does not know is 404 (so made-up ids never cause a secret
 * store read), and missing signature headers are 401. Null: go on.
 */
export function precheck(deps: Pick<EdgeDeps, 'links' | 'metrics'>, vendor: VendorModule, headers: RawDelivery['headers'], pathParam: string | undefined): IngestResponse | null {
  const kind = vendor.route.paramLink;
  if (kind && (pathParam !== undefined || vendor.route.param === 'required')) {
    const account = pathParam ?? '';
    if (accountProblem(kind, account) || deps.links.get(linkKey(kind, account)) === undefined) {
      count(deps, vendor, 'not_found');
      return { status: 404, body: { error: kind === 'generic' ? 'unknown_endpoint' : 'unknown_account' } };
    }
  }
  let missing: string[] | undefined;
  for (const h of vendor.requiredHeaders) if (!headers[h]) (missing ??= []).push(h);
  if (missing) return (count(deps, vendor, 'bad_signature'), { status: 401, body: { error: 'invalid_signature', reason: 'missing_headers', missing_headers: missing } });
  return null;
}

/**
 * Counts a request's outcome. A function of the module, as everything a delivery calls here:
 * under tsx each closure made per request also costs a defineProperty of its name (make bench-ingest).
 */
function count(deps: Pick<EdgeDeps, 'metrics'>, vendor: VendorModule, outcome: Outcome): void {
  deps.metrics.requests.inc({ vendor: vendor.source, outcome });
}

/**
 * A delivery at the edge: precheck -> secret -> verify -> map -> append to the inbox -> answer.
 * The 2xx is given only once Kafka acknowledged the append (acks=all); turning it into events,
 * dedupe included, is the inbox processor's (processor.ts). The answer carries the event ids the
 * delivery's events get, computed the same way the processor computes them.
 */
export async function accept(deps: EdgeDeps, vendor: VendorModule, d: RawDelivery): Promise<IngestResponse> {
  const early = precheck(deps, vendor, d.headers, d.pathParam);
  if (early) return early;
  let secret;
  try {
    secret = await deps.secretsFor(vendor.source, d.pathParam);
  } catch (e) {
    deps.logger.error({ vendor: vendor.source, err: e }, 'verification secrets unavailable');
    count(deps, vendor, 'unavailable');
    return { status: 503, body: { error: 'unavailable', reason: 'verification secrets unavailable' } };
  }
  if (!secret) {
    if (vendor.route.paramLink === 'generic') return (count(deps, vendor, 'not_found'), { status: 404, body: { error: 'unknown_endpoint' } });
    if (d.pathParam !== undefined) deps.logger.error({ vendor: vendor.source, account: d.pathParam }, 'no verification key stored for this account (ionflux link email <account> <ws> --verification-key K)');
    else deps.logger.error({ vendor: vendor.source }, 'no verification secret configured for this vendor');
    count(deps, vendor, 'unavailable');
    return { status: 503, body: { error: 'vendor_not_configured' } };
  }
  const verdict = vendor.verify(d, validSecrets(secret, d.receivedAt), d.receivedAt);
  if (!verdict.valid) {
    count(deps, vendor, 'bad_signature');
    return { status: 401, body: { error: 'invalid_signature', reason: verdict.reason, ...(verdict.missingHeaders ? { missing_headers: verdict.missingHeaders } : {}) } };
  }

  const mapped = vendor.map(d);
  const identity = mapped.ok ? identityOf(vendor, mapped.events) : failedDeliveryKey(vendor, d);
  const key = mapped.ok && mapped.events.length === 1 ? inboxKey(vendor.source, mapped.events[0]!.account, mapped.events[0]!.entity, mapped.events[0]!.orderingKey) : mapped.ok && mapped.events.length ? inboxKey(vendor.source, mapped.events[0]!.account) : inboxKey(vendor.source, identity);
  let answer: IngestResponse;
  let outcome: Outcome;
  if (!mapped.ok) {
    deps.logger.warn({ vendor: vendor.source, reason: mapped.reason }, 'verified delivery failed its schema; dead-lettered');
    [answer, outcome] = [{ status: 202, body: { status: 'dead_lettered', reason: 'schema_failed', detail: mapped.reason } }, 'schema_failed'];
  } else {
    const ids: string[] = [];
    for (const ev of mapped.events) {
      const link = deps.links.get(linkKey(vendor.source, ev.account));
      if (link) ids.push(eventIdOf(vendor, ev, link.workspaceId, link.source ?? vendor.source));
    }
    if (ids.length === 0) deps.logger.warn({ vendor: vendor.source, account: mapped.events[0]?.account }, 'delivery for an unlinked account dead-lettered');
    [answer, outcome] = ids.length ? [{ status: 200, body: { status: 'accepted', event_ids: ids } }, 'accepted'] : [{ status: 202, body: { status: 'dead_lettered', reason: 'unlinked' } }, 'unlinked'];
  }

  return deps.recent.once(identity, async () => {
    const known = deps.recent.get(identity);
    if (known) {
      count(deps, vendor, known.status === 200 ? 'duplicate' : outcome);
      return known.status === 200 ? { status: 200, body: { ...known.body, status: 'duplicate' } } : known;
    }
    const inbox: InboxDelivery = { route: vendor.route.path, param: d.pathParam, origin: 'webhook', receivedAt: d.receivedAt, headers: keptHeaders(vendor, d.headers), body: d.rawBody, key, mapped: edgeReading(vendor, mapped) };
    const end = deps.metrics.publishSeconds.startTimer({ vendor: vendor.source });
    try {
      await appendToInbox(deps.bus, [inbox], { timeoutMs: deps.publishTimeoutMs, topic: deps.inboxTopic });
    } catch (e) {
      deps.logger.warn({ vendor: vendor.source, err: e }, 'delivery not appended; the vendor will retry');
      count(deps, vendor, 'unavailable');
      return { status: 503, body: { error: 'unavailable', reason: 'event store did not acknowledge; retry later' } };
    }
    end();
    deps.metrics.appended.inc();
    deps.recent.set(identity, answer);
    count(deps, vendor, outcome);
    return answer;
  });
}

/**
 * What the processor needs of a delivery the edge mapped, when its one event is published as the
 * body's bytes: everything but the parsed payload. The processor then neither parses nor validates
 * the body again (JSON.parse and zod were about a tenth of its thread in make bench-ingest).
 */
export const edgeReadingSchema = z.object({
  deliveryId: z.string(),
  account: z.string(),
  // Topic name segments, as every vendor module maps them: a reading that is not one is not used.
  entity: z.string().regex(SEGMENT),
  action: z.string().regex(SEGMENT),
  orderingKey: z.string(),
  versionKey: z.string().optional(),
  version: z.string().optional(),
});
export type EdgeReading = z.infer<typeof edgeReadingSchema>;

/**
 * INBOX_HEADERS.mapped read back: what `edgeReadingSchema.safeParse(JSON.parse(text))` gives, or
 * undefined where that fails or the text is not JSON; checked by hand, as this runs once per
 * delivery on the processor's thread (zod's parse was most of the cost of reading it).
 */
export function parseEdgeReading(text: string): EdgeReading | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const { deliveryId, account, entity, action, orderingKey, versionKey, version } = v as Record<string, unknown>;
  if (typeof deliveryId !== 'string' || typeof account !== 'string' || typeof orderingKey !== 'string') return undefined;
  if (typeof entity !== 'string' || !SEGMENT.test(entity) || typeof action !== 'string' || !SEGMENT.test(action)) return undefined;
  if ((versionKey !== undefined && typeof versionKey !== 'string') || (version !== undefined && typeof version !== 'string')) return undefined;
  const reading: EdgeReading = { deliveryId, account, entity, action, orderingKey };
  if (versionKey !== undefined) reading.versionKey = versionKey;
  if (version !== undefined) reading.version = version;
  return reading;
}

/** INBOX_HEADERS.mapped for a delivery: only a verbatim vendor's single event (else the processor maps the body). */
export function edgeReading(vendor: VendorModule, mapped: MapResult): string | undefined {
  if (!vendor.verbatim || !mapped.ok || mapped.events.length !== 1) return undefined;
  const ev = mapped.events[0]!;
  const reading: EdgeReading = { deliveryId: ev.deliveryId, account: ev.account, entity: ev.entity, action: ev.action, orderingKey: ev.orderingKey, ...(ev.versionKey ? { versionKey: ev.versionKey } : {}), version: entityVersion(ev.payload) };
  return JSON.stringify(reading);
}

/** A mapped delivery's identity: its events' delivery keys, space-separated. */
function identityOf(vendor: VendorModule, events: MappedEvent[]): string {
  let out = '';
  for (let i = 0; i < events.length; i++) out += i === 0 ? deliveryKey(vendor, events[i]!) : ` ${deliveryKey(vendor, events[i]!)}`;
  return out;
}

/** `<source>:<account>:<delivery-id>`: what the processor dedupes a vendor event by. */
export const deliveryKey = (vendor: VendorModule, ev: Pick<MappedEvent, 'account' | 'deliveryId'>) => `${vendor.source}:${ev.account}:${ev.deliveryId}`;

/** A delivery that did not map: the vendor's delivery id header when it has one, else a digest of the body. */
export function failedDeliveryKey(vendor: VendorModule, d: RawDelivery): string {
  const id = d.headers['x-shopify-webhook-id'] ?? d.headers['webhook-id'] ?? deterministicEventId(d.rawBody.toString('base64'));
  return `${vendor.source}:${d.pathParam ?? ''}:${id}`;
}

/** The id the event of `ev` gets in `workspaceId` (PlatformEvent ids derive from the delivery). */
export function eventIdOf(vendor: VendorModule, ev: MappedEvent, workspaceId: string, source: string): string {
  return deterministicEventId(`${source}.${ev.entity}.${ev.action}:${workspaceId}:${deliveryKey(vendor, ev)}`);
}

function keptHeaders(vendor: VendorModule, headers: RawDelivery['headers']): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const h of vendor.mapHeaders) if (headers[h] !== undefined) out[h] = headers[h];
  return out;
}

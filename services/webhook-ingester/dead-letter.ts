import { DLQ_HEADERS } from '../../shared/bus/dead-letter.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { OutgoingRecord } from '../../shared/bus/types.ts';
import type { InboxDelivery } from '../../shared/ingest/inbox.ts';
import { redactString } from '../../shared/redact.ts';
import type { RawDelivery, VendorModule } from './vendors/types.ts';

// Signatures are not secrets, but they are useless once parked and we keep none of the auth headers.
const DROPPED_HEADERS = /signature|hmac|authorization|cookie|token/i;
const VENDOR_HEADER = 'webhook.header.';

/**
 * Where a parked delivery came from in the inbox, so `ionflux dlq replay` can append it there
 * again (same key, so same partition as its marker): only for a dead letter holding the whole
 * delivery as received, not one event of a batch.
 */
const INBOX = { topic: 'webhook.inbox.topic', key: 'webhook.inbox.key', route: 'webhook.inbox.route', param: 'webhook.inbox.param', origin: 'webhook.inbox.origin' } as const;

/** A verified delivery that cannot become an event: original bytes, vendor headers and why. */
export function webhookDeadLetter(a: { vendor: VendorModule; d: RawDelivery; error: { code: string; message: string }; value: Buffer; inbox?: { topic: string; delivery: InboxDelivery } }): OutgoingRecord {
  const vendorHeaders = Object.fromEntries(
    Object.entries(a.d.headers).filter((e): e is [string, string] => typeof e[1] === 'string' && !DROPPED_HEADERS.test(e[0])).map(([k, v]) => [`${VENDOR_HEADER}${k}`, v]),
  );
  const inbox: Record<string, string> = {};
  if (a.inbox) {
    const { topic, delivery } = a.inbox;
    Object.assign(inbox, { [INBOX.topic]: topic, [INBOX.key]: delivery.key, [INBOX.route]: delivery.route, [INBOX.origin]: delivery.origin });
    if (delivery.param !== undefined) inbox[INBOX.param] = delivery.param;
  }
  return {
    topic: topics.deadLetter('webhook-ingester'),
    key: a.vendor.source,
    value: a.value,
    headers: {
      ...vendorHeaders,
      ...inbox,
      [DLQ_HEADERS.topic]: `http:webhooks/${a.vendor.source}${a.d.pathParam ? `/${a.d.pathParam}` : ''}`,
      [DLQ_HEADERS.partition]: '-1',
      [DLQ_HEADERS.offset]: '-1',
      [DLQ_HEADERS.errorClass]: a.error.code,
      [DLQ_HEADERS.errorMessage]: redactString(a.error.message).slice(0, 2000),
      [DLQ_HEADERS.retryable]: 'false',
      [DLQ_HEADERS.attempts]: '1',
      [DLQ_HEADERS.service]: 'webhook-ingester',
      [DLQ_HEADERS.failedAt]: new Date().toISOString(),
      'webhook.source': a.vendor.source,
      'webhook.received_at': a.d.receivedAt.toISOString(),
    },
  };
}

/**
 * The inbox record a replayable webhook dead letter came from (see INBOX), marked as replayed
 * from `from`; undefined for any other dead letter.
 */
export function inboxDeliveryOf(headers: Record<string, string | undefined>, value: Buffer | null, from: string): { topic: string; delivery: InboxDelivery } | undefined {
  const [topic, key, route, origin] = [headers[INBOX.topic], headers[INBOX.key], headers[INBOX.route], headers[INBOX.origin]];
  const receivedAt = Date.parse(headers['webhook.received_at'] ?? '');
  if (!topic || key === undefined || !route || (origin !== 'webhook' && origin !== 'poll') || !value || Number.isNaN(receivedAt)) return undefined;
  const vendorHeaders: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (k.startsWith(VENDOR_HEADER) && v !== undefined) vendorHeaders[k.slice(VENDOR_HEADER.length)] = v;
  const param = headers[INBOX.param];
  return { topic, delivery: { route, origin, key, body: value, headers: vendorHeaders, receivedAt: new Date(receivedAt), replayedFrom: from, ...(param !== undefined ? { param } : {}) } };
}

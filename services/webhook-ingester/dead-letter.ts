import { DLQ_HEADERS } from '../../shared/bus/dead-letter.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { OutgoingRecord } from '../../shared/bus/types.ts';
import { redactString } from '../../shared/redact.ts';
import type { RawDelivery, VendorModule } from './vendors/types.ts';

// Signatures are not secrets, but they are useless once parked and we keep none of the auth headers.
const DROPPED_HEADERS = /signature|hmac|authorization|cookie|token/i;

/** A verified delivery that cannot become an event: original bytes, vendor headers and why. */
export function webhookDeadLetter(a: { vendor: VendorModule; d: RawDelivery; error: { code: string; message: string }; value: Buffer }): OutgoingRecord {
  const vendorHeaders = Object.fromEntries(
    Object.entries(a.d.headers).filter((e): e is [string, string] => typeof e[1] === 'string' && !DROPPED_HEADERS.test(e[0])).map(([k, v]) => [`webhook.header.${k}`, v]),
  );
  return {
    topic: topics.deadLetter('webhook-ingester'),
    key: a.vendor.source,
    value: a.value,
    headers: {
      ...vendorHeaders,
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

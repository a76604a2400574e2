import { createHash } from 'node:crypto';
import { inboxKey, type InboxDelivery } from '../../../shared/ingest/inbox.ts';
import type { Payload } from './entities.ts';
import { stringifyExact } from './json.ts';

const written = new WeakMap<Payload, { body: string; digest: string }>();

/** The body as appended, and its digest (sha256, 16 hex digits); each made once per payload. */
function bodyOf(p: Payload): { body: string; digest: string } {
  let w = written.get(p);
  if (!w) {
    const body = stringifyExact(p.body);
    w = { body, digest: createHash('sha256').update(body).digest('hex').slice(0, 16) };
    written.set(p, w);
  }
  return w;
}

/**
 * One version of an entity: its ordering key and the digest of the body appended for it.
 * Shopify's `updated_at` has whole seconds, so two changes within one second share it; the body
 * tells them apart. The poll watermark keeps these for the entities seen at exactly it.
 */
export const versionTag = (p: Payload): string => `${p.orderingKey}@${bodyOf(p).digest}`;

/**
 * A polled entity as an inbox delivery: the headers a webhook of the same entity carries, a
 * deterministic webhook id per entity version (`poll:<entity>:<id>:<updated_at>:<body digest>`:
 * a second change within the same second is another delivery, not a duplicate of the first), and
 * the key the ingester gives that entity, so a poll and a webhook of one entity share a partition
 * and the processor publishes one event per version.
 */
export function pollDelivery(shop: string, p: Payload, receivedAt: Date): InboxDelivery {
  const { body, digest } = bodyOf(p);
  return {
    route: 'shopify',
    origin: 'poll',
    receivedAt,
    headers: {
      'x-shopify-topic': p.topic,
      'x-shopify-shop-domain': shop,
      'x-shopify-webhook-id': `poll:${p.entity}:${p.orderingKey}:${p.updatedAt ?? 'none'}:${digest}`,
      'x-shopify-api-version': undefined,
    },
    body: Buffer.from(body),
    key: inboxKey('shopify', shop, p.entity, p.orderingKey),
  };
}

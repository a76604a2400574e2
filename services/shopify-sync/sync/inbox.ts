import { inboxKey, type InboxDelivery } from '../../../shared/ingest/inbox.ts';
import type { Payload } from './entities.ts';
import { stringifyExact } from './json.ts';

/**
 * A polled entity as an inbox delivery: the headers a webhook of the same entity carries, a
 * deterministic webhook id per entity version (`poll:<entity>:<id>:<updated_at>`), and the key the
 * ingester gives that entity, so a poll and a webhook of one entity share a partition and the
 * processor publishes one event per version.
 */
export function pollDelivery(shop: string, p: Payload, receivedAt: Date): InboxDelivery {
  return {
    route: 'shopify',
    origin: 'poll',
    receivedAt,
    headers: {
      'x-shopify-topic': p.topic,
      'x-shopify-shop-domain': shop,
      'x-shopify-webhook-id': `poll:${p.entity}:${p.orderingKey}:${p.updatedAt ?? 'none'}`,
      'x-shopify-api-version': undefined,
    },
    body: Buffer.from(stringifyExact(p.body)),
    key: inboxKey('shopify', shop, p.entity, p.orderingKey),
  };
}


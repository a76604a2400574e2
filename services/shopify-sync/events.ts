import { topics } from '../../shared/bus/topics.ts';
import type { OutgoingRecord } from '../../shared/bus/types.ts';
import { events as eventSchemas } from '../../shared/connectors/catalog/shopify.ts';
import type { EventCodec } from '../../shared/events/codec.ts';
import { buildEvent, PayloadSchemas } from '../../shared/events/platform-event.ts';
import { EVENT_HEADERS } from '../../shared/events/publisher.ts';

export const SOURCE = 'shopify-sync';
const schemas = new PayloadSchemas();
for (const [type, schema] of Object.entries(eventSchemas)) schemas.register(`shopify.${type}`, schema);

export type ShopifyEventType = keyof typeof eventSchemas;

/**
 * A PlatformEvent shopify-sync publishes itself on `ionflux.shopify.ws_<ws>.<entity>.<action>`
 * (sync progress and completion, installs, data reports), its payload checked by the catalog's
 * schema. `idempotencyKey` makes the event id.
 */
export async function shopifyEvent(codec: EventCodec, a: { workspaceId: string; type: ShopifyEventType; payload: unknown; idempotencyKey: string; correlationId?: string }): Promise<OutgoingRecord> {
  const [entity, action] = a.type.split('.') as [string, string];
  const event = buildEvent(schemas, { eventType: `shopify.${a.type}`, workspaceId: a.workspaceId, source: SOURCE, payload: a.payload, idempotencyKey: a.idempotencyKey, correlationId: a.correlationId ?? null, causationId: a.correlationId ?? null });
  return {
    topic: topics.event('shopify', a.workspaceId, entity, action),
    key: a.workspaceId,
    value: await codec.encode(event),
    headers: { [EVENT_HEADERS.eventId]: event.event_id, [EVENT_HEADERS.eventType]: event.event_type, [EVENT_HEADERS.workspace]: a.workspaceId },
  };
}

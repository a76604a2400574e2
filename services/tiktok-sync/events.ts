import { topics } from '../../shared/bus/topics.ts';
import type { OutgoingRecord } from '../../shared/bus/types.ts';
import { events as eventSchemas } from '../../shared/connectors/catalog/tiktok.ts';
import type { EventCodec } from '../../shared/events/codec.ts';
import { buildEvent, PayloadSchemas } from '../../shared/events/platform-event.ts';
import { EVENT_HEADERS } from '../../shared/events/publisher.ts';

export const SOURCE = 'tiktok-sync';
const schemas = new PayloadSchemas();
for (const [type, schema] of Object.entries(eventSchemas)) schemas.register(`tiktok.${type}`, schema);

export type TikTokEventType = keyof typeof eventSchemas;

/**
 * A PlatformEvent on `ionflux.tiktok.ws_<ws>.<entity>.<action>` (the topics the ingester's TikTok
 * webhooks use), its payload checked by the catalog's schema. `idempotencyKey` makes the event id,
 * so publishing the same thing twice gives the same id.
 */
export async function tiktokEvent(codec: EventCodec, a: { workspaceId: string; type: TikTokEventType; payload: unknown; idempotencyKey: string; key?: string; correlationId?: string }): Promise<{ record: OutgoingRecord; eventId: string }> {
  const [entity, action] = a.type.split('.') as [string, string];
  const event = buildEvent(schemas, { eventType: `tiktok.${a.type}`, workspaceId: a.workspaceId, source: SOURCE, payload: a.payload, idempotencyKey: a.idempotencyKey, correlationId: a.correlationId ?? null, causationId: a.correlationId ?? null });
  const record: OutgoingRecord = {
    topic: topics.event('tiktok', a.workspaceId, entity, action),
    key: a.key ?? a.workspaceId,
    value: await codec.encode(event),
    headers: { [EVENT_HEADERS.eventId]: event.event_id, [EVENT_HEADERS.eventType]: event.event_type, [EVENT_HEADERS.workspace]: a.workspaceId },
  };
  return { record, eventId: event.event_id };
}

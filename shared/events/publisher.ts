import type { Bus, PublishOptions, RecordAck } from '../bus/types.ts';
import type { EventCodec } from './codec.ts';
import type { PlatformEvent } from './platform-event.ts';

/** Headers every event carries, so consumers can route without decoding. */
export const EVENT_HEADERS = { eventId: 'ionflux.event_id', eventType: 'ionflux.event_type', workspace: 'ionflux.workspace_id' } as const;

/** Encodes an event and publishes it; the key is the entity id where order matters, else the workspace. */
export async function publishEvent(
  deps: { bus: Bus; codec: EventCodec },
  topic: string,
  event: PlatformEvent,
  opts: PublishOptions & { key?: string } = {},
): Promise<RecordAck> {
  const value = await deps.codec.encode(event);
  return deps.bus.publish(
    {
      topic,
      key: opts.key ?? event.workspace_id,
      value,
      headers: { [EVENT_HEADERS.eventId]: event.event_id, [EVENT_HEADERS.eventType]: event.event_type, [EVENT_HEADERS.workspace]: event.workspace_id },
    },
    opts,
  );
}

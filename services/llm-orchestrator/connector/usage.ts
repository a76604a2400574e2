import { topics } from '../../../shared/bus/topics.ts';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { usageRecordedSchema, type UsageRecorded } from '../../../shared/connectors/catalog/llm-schemas.ts';
import { buildEvent, PayloadSchemas, type PlatformEvent } from '../../../shared/events/platform-event.ts';
import { EVENT_HEADERS } from '../../../shared/events/publisher.ts';

/** What usage events are made with: the service's name (their type and topic) and the event encoder. */
export interface UsageEvents {
  service: string;
  encode: (event: PlatformEvent) => Promise<Buffer>;
}

/**
 * The record of a billed call's `<service>.usage.recorded` event on
 * `ionflux.<service>.ws_<ws>.usage.recorded`, as the worker would publish an emitted event. The
 * handler stages it `evenOnFailure`, beside the spend totals: a call the provider billed is in the
 * usage events although the command then fails (ctx.emit publishes only with a succeeded outcome).
 * Its id is the one this command's usage event always had, the worker's id of a handler's first
 * emitted event (`<command id>:emit:0`): a command has one billed call (the chain stops at the
 * first answer, and nothing after it is retried), and a command run again or a unit published again
 * gives the same id, which consumers dedupe on.
 */
export function usageRecorder(o: UsageEvents): (workspaceId: string, usage: UsageRecorded) => Promise<OutgoingRecord> {
  const eventType = `${o.service}.usage.recorded`;
  const schemas = new PayloadSchemas().register(eventType, usageRecordedSchema);
  return async (workspaceId, usage) => {
    const id = usage.command_id;
    const event = buildEvent(schemas, { eventType, workspaceId, source: `${o.service}-worker`, payload: usage, idempotencyKey: `${id}:emit:0`, correlationId: id, causationId: id });
    return {
      topic: topics.event(o.service, workspaceId, 'usage', 'recorded'),
      key: workspaceId,
      value: await o.encode(event),
      headers: { [EVENT_HEADERS.eventId]: event.event_id, [EVENT_HEADERS.eventType]: event.event_type, [EVENT_HEADERS.workspace]: workspaceId, command_id: id },
    };
  };
}

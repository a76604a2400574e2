import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { HubError } from '../errors.ts';
import { buildEvent, deterministicEventId, PayloadSchemas, platformEventSchema, type NewEvent } from './platform-event.ts';

const schemas = new PayloadSchemas().register('shop.*', z.object({ id: z.number() }));
const base: NewEvent = { eventType: 'shop.orders.created', workspaceId: 'acme', source: 'unit', payload: { id: 1 }, idempotencyKey: 'd-1', correlationId: 'd-1' };
const codeOf = (e: NewEvent) => {
  try {
    buildEvent(schemas, e);
    return 'built';
  } catch (err) {
    return err instanceof HubError ? `${err.code}: ${err.message}` : String(err);
  }
};

describe('buildEvent', () => {
  it('builds an envelope the decoders accept, with an id derived from the idempotency key', () => {
    const event = buildEvent(schemas, { ...base, timestamp: 1_700_000_000_000 });
    expect(platformEventSchema.parse(event)).toEqual(event);
    expect(event).toMatchObject({ event_type: 'shop.orders.created', workspace_id: 'acme', timestamp: 1_700_000_000_000, payload_json: '{"id":1}', payload_schema_version: '1', correlation_id: 'd-1', causation_id: null });
    expect(event.event_id).toBe(deterministicEventId('shop.orders.created:acme:d-1'));
    expect(platformEventSchema.parse(buildEvent(schemas, { ...base, idempotencyKey: undefined })).event_id).not.toBe(event.event_id);
  });

  it('refuses what the envelope schema refuses, saying which field', () => {
    expect(codeOf({ ...base, eventType: 'shop.Orders.created' })).toMatch(/^unknown_event_type|^event_invalid: event_type/);
    const any = new PayloadSchemas().register('*', z.unknown());
    const build = (e: Partial<NewEvent>) => {
      try {
        const event = buildEvent(any, { ...base, ...e });
        return platformEventSchema.safeParse(event).success ? 'built' : 'built but invalid';
      } catch (err) {
        return (err as HubError).code + ': ' + (err as HubError).message;
      }
    };
    expect(build({ eventType: 'orders' })).toMatch(/^event_invalid: event_type "orders"/);
    expect(build({ eventType: 'Shop.orders.created' })).toMatch(/^event_invalid: event_type/);
    expect(build({ workspaceId: 'Acme Inc' })).toBe('event_invalid: workspace_id: invalid workspace id');
    expect(build({ timestamp: -1 })).toMatch(/^event_invalid: timestamp/);
    expect(build({ timestamp: 1.5 })).toMatch(/^event_invalid: timestamp/);
    expect(build({ source: '' })).toBe('event_invalid: source_service_name must not be empty');
    expect(build({})).toBe('built');
    expect(build({ correlationId: null, causationId: 'c', timestamp: 0 })).toBe('built');
  });

  it('refuses an event type without a schema, and a payload its schema refuses', () => {
    expect(codeOf({ ...base, eventType: 'other.orders.created' })).toBe('unknown_event_type: no payload schema registered for other.orders.created');
    expect(codeOf({ ...base, payload: { id: 'x' } })).toMatch(/^payload_invalid: shop.orders.created payload: .*id/);
  });
});

describe('deterministicEventId', () => {
  it('gives the ids it always gave: the v5 uuid of the name in the hub namespace, for short, non-ASCII and long names', () => {
    // Values computed by the streaming implementation before the one-shot hash replaced it.
    expect(deterministicEventId('shop.orders.created:acme:d-1')).toBe('fb0a739d-d3da-5d76-ac21-a520b1feabab');
    expect(deterministicEventId('ç命'.repeat(200))).toBe('704ac676-93f8-5746-a768-aba74d5b19d3');
    // Names on either side of the one-shot buffer's size, in bytes and in characters.
    for (const name of ['', 'x'.repeat(336), 'x'.repeat(337), '命'.repeat(336), '命'.repeat(337), 'x'.repeat(5000)]) {
      const h = createHash('sha1').update(Buffer.from('6f1e1c2a9b7d4e0f8a3c5d2b1e0f9a8c', 'hex')).update(name).digest();
      h[6] = (h[6]! & 0x0f) | 0x50;
      h[8] = (h[8]! & 0x3f) | 0x80;
      const hex = h.subarray(0, 16).toString('hex');
      expect(deterministicEventId(name)).toBe(`${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`);
    }
  });
});

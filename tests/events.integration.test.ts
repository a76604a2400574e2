import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { topics } from '../shared/bus/topics.ts';
import { buildEvent, PayloadSchemas } from '../shared/events/platform-event.ts';
import { publishEvent } from '../shared/events/publisher.ts';
import { decodeWithConfluentPython } from './helpers/interop.ts';
import { infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';

const schemas = new PayloadSchemas().register('test.orders.created', z.looseObject({ id: z.number(), total: z.string() }), '1');

describe('PlatformEvent through Kafka and the schema registry', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  beforeAll(async () => {
    infra = await realInfra('events-test');
  });
  afterAll(() => infra.close());

  it('publishes a Confluent-framed Avro record that our codec and Python confluent-kafka both decode to the same fields', async () => {
    const ws = uid('ws');
    const topic = topics.event('test', ws, 'orders', 'created');
    const event = buildEvent(schemas, {
      eventType: 'test.orders.created',
      workspaceId: ws,
      source: 'events-test',
      payload: { id: 820982911946154500, total: '199.65', note: 'héllo ✓' },
      idempotencyKey: 'delivery-1',
      correlationId: 'delivery-1',
    });
    const ack = await publishEvent(infra, topic, event, { key: '820982911946154500' });
    expect(Number(ack.offset)).toBeGreaterThanOrEqual(0);

    const [record] = await readAll(infra.bus, topic, { atLeast: 1 });
    expect(record!.value![0]).toBe(0); // Confluent magic byte
    expect(record!.value!.readUInt32BE(1)).toBe(infra.codec.schemaId);
    expect(record!.key!.toString()).toBe('820982911946154500');
    expect(await infra.codec.decode(record!.value!)).toEqual(event);

    const [foreign] = await decodeWithConfluentPython({ brokers: infraEnv().brokers, registryUrl: infra.registryUrl, topic, count: 1 });
    expect(foreign!.schema_id).toBe(infra.codec.schemaId);
    expect(foreign!.value).toEqual(event);
    expect(JSON.parse(foreign!.value.payload_json as string)).toEqual({ id: 820982911946154500, total: '199.65', note: 'héllo ✓' });
  });

  it('refuses a payload that fails its event type schema, and an event type with no schema', () => {
    const ws = uid('ws');
    expect(() => buildEvent(schemas, { eventType: 'test.orders.created', workspaceId: ws, source: 's', payload: { id: 'x' } })).toThrow(/payload/);
    expect(() => buildEvent(schemas, { eventType: 'test.nothing.here', workspaceId: ws, source: 's', payload: {} })).toThrow(/no payload schema/);
  });

  it('gives the same event id for the same delivery id, so consumers can dedupe', () => {
    const a = buildEvent(schemas, { eventType: 'test.orders.created', workspaceId: 'acme', source: 's', payload: { id: 1, total: '1' }, idempotencyKey: 'd-1' });
    const b = buildEvent(schemas, { eventType: 'test.orders.created', workspaceId: 'acme', source: 's', payload: { id: 1, total: '1' }, idempotencyKey: 'd-1' });
    const c = buildEvent(schemas, { eventType: 'test.orders.created', workspaceId: 'acme', source: 's', payload: { id: 1, total: '1' }, idempotencyKey: 'd-2' });
    expect(a.event_id).toBe(b.event_id);
    expect(a.event_id).not.toBe(c.event_id);
  });
});

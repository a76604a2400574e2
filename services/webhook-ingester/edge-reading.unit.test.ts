import { describe, expect, it } from 'vitest';
import { edgeReadingSchema, parseEdgeReading } from './edge.ts';

/** What the processor read before parseEdgeReading: the schema's parse of the JSON, undefined if either fails. */
function bySchema(text: string) {
  try {
    const r = edgeReadingSchema.safeParse(JSON.parse(text));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

describe('parseEdgeReading (the processor reading INBOX_HEADERS.mapped)', () => {
  const ok = { deliveryId: 'w-1', account: 'shop.myshopify.com', entity: 'orders', action: 'created', orderingKey: '820982911946154508' };
  const texts = [
    JSON.stringify(ok),
    JSON.stringify({ ...ok, version: '2026-03-01T06:59:58-05:00' }),
    JSON.stringify({ ...ok, versionKey: '1', version: 'x', extra: 1 }),
    JSON.stringify({ ...ok, entity: 'Orders' }),
    JSON.stringify({ ...ok, action: 'a.b' }),
    JSON.stringify({ ...ok, entity: '' }),
    JSON.stringify({ ...ok, version: null }),
    JSON.stringify({ ...ok, versionKey: 5 }),
    JSON.stringify({ ...ok, deliveryId: 1 }),
    JSON.stringify({ ...ok, account: undefined }),
    JSON.stringify({ ...ok, orderingKey: null }),
    JSON.stringify([ok]),
    'null',
    '"text"',
    '{"deliveryId":',
    '',
  ];
  it.each(texts)('reads %s as the schema does', (text) => {
    expect(parseEdgeReading(text)).toStrictEqual(bySchema(text));
  });
});

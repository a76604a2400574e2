import type { KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { toRecord } from './records.ts';

describe('a kafkajs message as a record', () => {
  it('has each header as text and as the bytes that arrived; a repeated header counts by its last value, an empty one not at all', () => {
    const raw = Buffer.from('caf\u00e9');
    const r = toRecord('t', 2, {
      key: Buffer.from('k'), value: Buffer.from('v'), timestamp: '1700000000000', attributes: 0, offset: '41', size: 0,
      headers: { one: raw, many: [Buffer.from('first'), Buffer.from('last')], text: 'plain' as unknown as Buffer, none: undefined },
    } as unknown as KafkaMessage);
    expect(r).toMatchObject({ topic: 't', partition: 2, offset: '41', timestamp: '1700000000000' });
    expect(r.headers).toEqual({ one: 'caf\u00e9', many: 'last', text: 'plain' });
    expect(r.rawHeaders!.one).toBe(raw);
    expect(r.rawHeaders!.many).toEqual(Buffer.from('last'));
    expect(r.rawHeaders!.text).toEqual(Buffer.from('plain'));
    expect(Object.keys(r.rawHeaders!)).toEqual(['one', 'many', 'text']);
  });
});

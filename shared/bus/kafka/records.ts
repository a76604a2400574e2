import type { KafkaMessage } from 'kafkajs';
import type { IncomingRecord } from '../types.ts';

/**
 * A kafkajs message as the bus hands it out: headers both as text and as the bytes that arrived.
 * Header values arrive as Buffers (or arrays of them when a header repeats); the last one counts.
 * One pass over them (every record of every fetch goes through here).
 */
export function toRecord(topic: string, partition: number, m: KafkaMessage): IncomingRecord {
  const headers: Record<string, string> = {};
  const rawHeaders: Record<string, Buffer> = {};
  const h = m.headers;
  if (h) {
    for (const k of Object.keys(h)) {
      const v = h[k];
      const last = Array.isArray(v) ? v[v.length - 1] : v;
      if (last === undefined || last === null) continue;
      const bytes = Buffer.isBuffer(last) ? last : Buffer.from(String(last));
      rawHeaders[k] = bytes;
      headers[k] = bytes.toString('utf8');
    }
  }
  return { topic, partition, offset: m.offset, key: m.key, value: m.value, headers, rawHeaders, timestamp: m.timestamp };
}

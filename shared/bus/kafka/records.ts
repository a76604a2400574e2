import type { IHeaders, KafkaMessage } from 'kafkajs';
import type { IncomingRecord } from '../types.ts';

/** A kafkajs message as the bus hands it out: headers both as text and as the bytes that arrived. */
export function toRecord(topic: string, partition: number, m: KafkaMessage): IncomingRecord {
  const rawHeaders = rawHeadersOf(m.headers);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(rawHeaders)) headers[k] = v.toString('utf8');
  return { topic, partition, offset: m.offset, key: m.key, value: m.value, headers, rawHeaders, timestamp: m.timestamp };
}

/** Header values arrive as Buffers (or arrays of them when a header repeats); the last one counts. */
function rawHeadersOf(h: IHeaders | undefined): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(h ?? {})) {
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (last !== undefined && last !== null) out[k] = Buffer.isBuffer(last) ? last : Buffer.from(String(last));
  }
  return out;
}

/** What the bus moves: raw bytes with a key and string headers. Codecs sit above it. */
export interface OutgoingRecord {
  topic: string;
  key?: string | Buffer | null;
  value: Buffer | string | null;
  headers?: Record<string, string | Buffer>;
}

export interface IncomingRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
  timestamp: string;
}

export interface RecordAck {
  topic: string;
  partition: number;
  offset: string;
}

export type PublishOutcome = { ok: true; ack: RecordAck } | { ok: false; error: Error };

export interface PublishOptions {
  /** Give up waiting after this long; a record not yet handed to Kafka is then not sent at all. */
  timeoutMs?: number;
  /** Units with the same order key land in publish order, even on a bus with several lanes. */
  orderKey?: string;
}

/** The narrow bus interface; KafkaBus is the real one, tests of pure logic may use another. */
export interface Bus {
  publish(record: OutgoingRecord, opts?: PublishOptions): Promise<RecordAck>;
  publishBatch(records: OutgoingRecord[], opts?: PublishOptions): Promise<PublishOutcome[]>;
  close(): Promise<void>;
}

/** Header values from kafkajs arrive as Buffers (or arrays of them); we use the last as a string. */
export function headersToStrings(headers: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (last !== undefined && last !== null) out[k] = Buffer.isBuffer(last) ? last.toString('utf8') : String(last);
  }
  return out;
}

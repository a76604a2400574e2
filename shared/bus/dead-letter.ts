import { describeError } from '../errors.ts';
import { redactString } from '../redact.ts';
import type { IncomingRecord, OutgoingRecord } from './types.ts';

/** Headers a dead letter carries besides the original record's own (cf. KIP-298). */
export const DLQ_HEADERS = {
  topic: 'dlq.origin.topic',
  partition: 'dlq.origin.partition',
  offset: 'dlq.origin.offset',
  errorClass: 'dlq.error.class',
  errorMessage: 'dlq.error.message',
  retryable: 'dlq.error.retryable',
  attempts: 'dlq.attempts',
  service: 'dlq.service',
  failedAt: 'dlq.failed.at',
} as const;

/** The original key, bytes and headers, plus where the record came from and why it failed. */
export function deadLetterRecord(a: {
  dlqTopic: string;
  service: string;
  record: Pick<IncomingRecord, 'topic' | 'partition' | 'offset'>;
  /** The failed record's bytes; its raw headers when it has them (so binary headers survive). */
  message: { key: Buffer | string | null; value: Buffer | null; headers?: Record<string, unknown>; rawHeaders?: Record<string, Buffer> };
  error: unknown;
  attempts: number;
}): OutgoingRecord {
  const e = describeError(a.error);
  const original = Object.fromEntries(
    Object.entries(a.message.rawHeaders ?? a.message.headers ?? {}).flatMap(([k, v]) => {
      const last = Array.isArray(v) ? v[v.length - 1] : v;
      return last === undefined || last === null ? [] : [[k, last as Buffer | string]];
    }),
  );
  return {
    topic: a.dlqTopic,
    key: a.message.key,
    value: a.message.value,
    headers: {
      ...original,
      [DLQ_HEADERS.topic]: a.record.topic,
      [DLQ_HEADERS.partition]: String(a.record.partition),
      [DLQ_HEADERS.offset]: a.record.offset,
      [DLQ_HEADERS.errorClass]: e.code,
      [DLQ_HEADERS.errorMessage]: redactString(e.message).slice(0, 2000),
      [DLQ_HEADERS.retryable]: String(e.retryable),
      [DLQ_HEADERS.attempts]: String(a.attempts),
      [DLQ_HEADERS.service]: a.service,
      [DLQ_HEADERS.failedAt]: new Date().toISOString(),
    },
  };
}

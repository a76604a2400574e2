import { Partitioners, type Kafka, type Message, type Producer, type TopicMessages } from 'kafkajs';
import { HubError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { TopicProvisioner } from './provision.ts';
import type { Bus, OutgoingRecord, PublishOptions, PublishOutcome, RecordAck } from './types.ts';

interface Pending {
  record: OutgoingRecord;
  resolve: (ack: RecordAck) => void;
  reject: (e: Error) => void;
  taken: boolean;
  timer?: NodeJS.Timeout;
}

export interface ProducerOptions {
  kafka: Kafka;
  provisioner: TopicProvisioner;
  logger: Logger;
  /** Most records in one produce request. */
  maxBatch?: number;
  /** How long a send may retry a dead broker before its records fail. */
  maxRetryTimeMs?: number;
}

/**
 * An idempotent, acks=all producer that batches: callers publish records one at a time and each
 * gets its own outcome, while records that arrive during a send go together in the next
 * request (one awaited send per record is ~10x slower: KafkaJS issue 772).
 */
export class KafkaBus implements Bus {
  private readonly producer: Producer;
  private queue: Pending[] = [];
  private flushing = false;
  private connected: Promise<void> | undefined;
  private closed = false;
  private readonly partitioner = Partitioners.DefaultPartitioner();

  constructor(private readonly opts: ProducerOptions) {
    this.producer = opts.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 100, maxRetryTime: 1000 },
    });
  }

  connect(): Promise<void> {
    this.connected ??= this.producer.connect();
    return this.connected;
  }

  publish(record: OutgoingRecord, opts: PublishOptions = {}): Promise<RecordAck> {
    if (this.closed) return Promise.reject(new HubError('bus_closed', 'the producer is closed'));
    return new Promise<RecordAck>((resolve, reject) => {
      const p: Pending = { record, resolve, reject, taken: false };
      if (opts.timeoutMs !== undefined) {
        p.timer = setTimeout(() => {
          // Not yet handed to Kafka: drop it so a record the caller was told failed is never sent.
          if (!p.taken) this.queue = this.queue.filter((q) => q !== p);
          reject(new HubError('publish_timeout', `Kafka did not acknowledge within ${opts.timeoutMs} ms`, { retryable: true }));
        }, opts.timeoutMs);
      }
      this.queue.push(p);
      void this.flush();
    });
  }

  publishBatch(records: OutgoingRecord[], opts: PublishOptions = {}): Promise<PublishOutcome[]> {
    return Promise.all(
      records.map((r) =>
        this.publish(r, opts).then(
          (ack): PublishOutcome => ({ ok: true, ack }),
          (error: Error): PublishOutcome => ({ ok: false, error }),
        ),
      ),
    );
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.opts.maxBatch ?? 1000);
        for (const p of batch) p.taken = true;
        await this.send(batch);
      }
    } finally {
      this.flushing = false;
    }
  }

  private async send(batch: Pending[]): Promise<void> {
    try {
      await this.connect();
      await this.opts.provisioner.ensure(batch.map((p) => p.record.topic));
      const partitions = batch.map((p) => this.partitionFor(p.record));
      const byTopic = new Map<string, Message[]>();
      batch.forEach((p, i) => {
        const list = byTopic.get(p.record.topic) ?? [];
        list.push({ ...toMessage(p.record), partition: partitions[i] });
        byTopic.set(p.record.topic, list);
      });
      const topicMessages: TopicMessages[] = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
      const results = await this.producer.sendBatch({ topicMessages, acks: -1 });
      settle(batch, partitions, results);
    } catch (e) {
      const error = new HubError('publish_failed', `Kafka did not acknowledge: ${(e as Error).message}`, { retryable: true, cause: e });
      this.opts.logger.warn({ err: error, records: batch.length }, 'publish failed');
      for (const p of batch) finish(p, error);
    }
  }

  private partitionFor(r: OutgoingRecord): number {
    const count = this.opts.provisioner.partitionCount(r.topic);
    const partitionMetadata = Array.from({ length: count }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }));
    return this.partitioner({ topic: r.topic, partitionMetadata, message: toMessage(r) });
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 10));
    await this.producer.disconnect();
    await this.opts.provisioner.close();
  }
}

function toMessage(r: OutgoingRecord): Message {
  return { key: r.key ?? null, value: r.value, headers: r.headers };
}

function finish(p: Pending, outcome: RecordAck | Error): void {
  clearTimeout(p.timer);
  if (outcome instanceof Error) p.reject(outcome);
  else p.resolve(outcome);
}

/**
 * kafkajs answers with one base offset per (topic, partition). We choose each record's partition
 * ourselves (Java's murmur2 on the key, as kafkajs's default does), so each record's offset is
 * its partition's base plus its index there, in send order.
 */
function settle(batch: Pending[], partitions: number[], results: { topicName: string; partition: number; baseOffset?: string }[]): void {
  const base = new Map(results.map((r) => [`${r.topicName}/${r.partition}`, BigInt(r.baseOffset ?? '-1')]));
  const seen = new Map<string, bigint>();
  batch.forEach((p, i) => {
    const key = `${p.record.topic}/${partitions[i]}`;
    const index = seen.get(key) ?? 0n;
    seen.set(key, index + 1n);
    const b = base.get(key) ?? -1n;
    finish(p, { topic: p.record.topic, partition: partitions[i]!, offset: b >= 0n ? String(b + index) : '-1' });
  });
}

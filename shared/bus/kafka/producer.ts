import { Partitioners, type Kafka, type Message, type Producer, type TopicMessages } from 'kafkajs';
import { HubError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { OutgoingRecord, PublishOptions, PublishOutcome, RecordAck } from '../types.ts';
import { connectFenced, hubProducer } from './fence.ts';
import type { TopicProvisioner } from './provision.ts';

/**
 * The most key and value bytes one produce request gathers from several units: a quarter of the
 * broker's message.max.bytes (4 MiB in deploy/), leaving room for headers and batch overhead.
 */
const REQUEST_BYTES = 1024 * 1024;

const recordBytes = (records: OutgoingRecord[]) => records.reduce((n, r) => n + (r.value?.length ?? 0) + (r.key?.length ?? 0), 0);

/** Records that must land together (or not at all, when transactional); never split across requests. */
interface Unit {
  records: OutgoingRecord[];
  /** Key and value bytes of its records (headers are small next to the request limit). */
  bytes: number;
  resolve: (acks: RecordAck[]) => void;
  reject: (e: Error) => void;
  taken: boolean;
  timer?: NodeJS.Timeout;
}

export interface ProducerOptions {
  kafka: Kafka;
  provisioner: TopicProvisioner;
  logger: Logger;
  /** Most records in one produce request (a unit is never split). */
  maxBatch?: number;
  /**
   * With an id, every request is one Kafka transaction: the records of a unit become visible to
   * read_committed consumers together or never. Give each running instance its own stable id.
   */
  transactionalId?: string;
  /**
   * Producers working side by side (default 1), each with its own queue and, when transactional,
   * its own id (`<transactionalId>-<n>` from the second on): one transaction's round trips no
   * longer hold up every other record. Units with the same `orderKey` always share a producer, so
   * they land in the order they were published.
   */
  lanes?: number;
}

/** One producer and its queue: requests leave one at a time, in publish order. */
class Lane {
  producer: Producer;
  queue: Unit[] = [];
  flushing = false;
  private connected: Promise<void> | undefined;

  constructor(
    private readonly owner: KafkaProducer,
    private readonly newProducer: () => Producer,
    private readonly transactional: boolean,
  ) {
    this.producer = newProducer();
  }

  connect(): Promise<void> {
    // A transactional lane fences its id's previous holder (this instance before a crash) at
    // once, so what that one left open is aborted before this process reads its state tables.
    this.connected ??= (this.transactional ? connectFenced(this.producer) : this.producer.connect()).catch((e: unknown) => {
      this.connected = undefined;
      throw e;
    });
    return this.connected;
  }

  async flush(maxBatch: number): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length > 0) await this.send(this.takeBatch(maxBatch));
    } finally {
      this.flushing = false;
    }
  }

  /**
   * The next units for one request: at most `max` records and REQUEST_BYTES (a unit alone may be
   * larger). The broker refuses a partition's batch over its message.max.bytes (4 MiB here), and a
   * refused request fails every unit in it: a burst of large outcomes to one topic must not add up
   * to that, or each retry would gather them into the same refused request again.
   */
  private takeBatch(max: number): Unit[] {
    let [count, bytes, n] = [0, 0, 0];
    const fits = (u: Unit) => count + u.records.length <= max && bytes + u.bytes <= REQUEST_BYTES;
    while (n < this.queue.length && (n === 0 || fits(this.queue[n]!))) {
      count += this.queue[n]!.records.length;
      bytes += this.queue[n++]!.bytes;
    }
    const batch = this.queue.splice(0, n);
    for (const u of batch) u.taken = true;
    return batch;
  }

  private async send(batch: Unit[]): Promise<void> {
    const records = batch.flatMap((u) => u.records);
    try {
      await this.connect();
      const { topicMessages, partitions } = await this.owner.requestOf(records);
      const results = this.transactional ? await this.sendInTransaction(topicMessages) : await this.producer.sendBatch({ topicMessages, acks: -1 });
      const acks = offsetsOf(records, partitions, results);
      let i = 0;
      for (const u of batch) {
        clearTimeout(u.timer);
        u.resolve(acks.slice(i, (i += u.records.length)));
      }
    } catch (e) {
      // The broker may have appended the request whose answer was lost, and it remembers the
      // request's sequence numbers. kafkajs hands the same numbers to the next records: the broker
      // would take them for a retry of that request, drop them and answer "appended" (a lost
      // acknowledged record). A new producer (new id, numbers from 0) never meets them again.
      this.renew();
      const error = new HubError('publish_failed', `Kafka did not acknowledge: ${(e as Error).message}`, { retryable: true, cause: e });
      this.owner.logger.warn({ err: error, records: records.length }, 'publish failed');
      for (const u of batch) {
        clearTimeout(u.timer);
        u.reject(error);
      }
    }
  }

  private async sendInTransaction(topicMessages: TopicMessages[]) {
    const txn = await this.producer.transaction();
    try {
      const results = await txn.sendBatch({ topicMessages, acks: -1 });
      await txn.commit();
      return results;
    } catch (e) {
      // Unusable or not (broker gone mid-transaction), send() renews the producer: the new one
      // (same id, next epoch) fences this one and the coordinator aborts what it left open.
      await txn.abort().catch(() => undefined);
      throw e;
    }
  }

  /** A new producer for what comes next; the old one is let go. */
  private renew(): void {
    const old = this.producer;
    void old.disconnect().catch(() => undefined);
    this.producer = this.newProducer();
    this.connected = undefined;
  }
}

/**
 * An idempotent, acks=all producer that batches: callers publish records one at a time and each
 * gets its own outcome, while records that arrive during a send go together in the next
 * request (one awaited send per record is ~10x slower: KafkaJS issue 772).
 */
export class KafkaProducer {
  private readonly lanes: Lane[];
  private next = 0;
  private closed = false;
  private readonly partitioner = Partitioners.DefaultPartitioner();
  readonly logger: Logger;

  constructor(private readonly opts: ProducerOptions) {
    this.logger = opts.logger;
    this.lanes = Array.from({ length: Math.max(1, opts.lanes ?? 1) }, (_, n) => {
      const transactionalId = opts.transactionalId && (n === 0 ? opts.transactionalId : `${opts.transactionalId}-${n}`);
      return new Lane(this, () => this.newProducer(transactionalId), Boolean(transactionalId));
    });
  }

  private newProducer(transactionalId: string | undefined): Producer {
    return hubProducer(this.opts.kafka, transactionalId);
  }

  async connect(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.connect()));
  }

  async publish(record: OutgoingRecord, opts: PublishOptions = {}): Promise<RecordAck> {
    const [ack] = await this.publishAtomic([record], opts);
    return ack!;
  }

  /** Publishes records as one unit: same request, and with a transactional id, same transaction. */
  publishAtomic(records: OutgoingRecord[], opts: PublishOptions = {}): Promise<RecordAck[]> {
    if (this.closed) return Promise.reject(new HubError('bus_closed', 'the producer is closed'));
    const lane = this.laneFor(opts.orderKey);
    return new Promise<RecordAck[]>((resolve, reject) => {
      const unit: Unit = { records, bytes: recordBytes(records), resolve, reject, taken: false };
      if (opts.timeoutMs !== undefined) {
        unit.timer = setTimeout(() => {
          // Not yet handed to Kafka: drop it, so a record the caller was told failed is never sent.
          if (!unit.taken) lane.queue = lane.queue.filter((u) => u !== unit);
          reject(new HubError('publish_timeout', `Kafka did not acknowledge within ${opts.timeoutMs} ms`, { retryable: true }));
        }, opts.timeoutMs);
      }
      lane.queue.push(unit);
      void lane.flush(this.opts.maxBatch ?? 1000);
    });
  }

  /** The lane of an order key; without one, an idle lane if there is one, else the next in turn. */
  private laneFor(orderKey: string | undefined): Lane {
    if (this.lanes.length === 1) return this.lanes[0]!;
    if (orderKey !== undefined) return this.lanes[fnv1a(orderKey) % this.lanes.length]!;
    const idle = this.lanes.find((l) => !l.flushing && l.queue.length === 0);
    return idle ?? this.lanes[(this.next = (this.next + 1) % this.lanes.length)]!;
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

  /** Ensures the topics exist and groups the records per topic with the partitions we chose. */
  async requestOf(records: OutgoingRecord[]): Promise<{ topicMessages: TopicMessages[]; partitions: number[] }> {
    await this.opts.provisioner.ensure(records.map((r) => r.topic));
    const partitions = records.map((r) => this.partitionFor(r));
    const byTopic = new Map<string, Message[]>();
    records.forEach((r, i) => {
      const list = byTopic.get(r.topic) ?? [];
      list.push({ ...toMessage(r), partition: partitions[i] });
      byTopic.set(r.topic, list);
    });
    return { topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })), partitions };
  }

  /** Per partition count, the metadata the partitioner is given (it reads only the ids and count). */
  private readonly metadataOf = new Map<number, { partitionId: number; leader: number; partitionErrorCode: number; replicas: number[]; isr: number[] }[]>();

  private partitionFor(r: OutgoingRecord): number {
    const count = this.opts.provisioner.partitionCount(r.topic);
    let partitionMetadata = this.metadataOf.get(count);
    if (!partitionMetadata) {
      partitionMetadata = Array.from({ length: count }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }));
      this.metadataOf.set(count, partitionMetadata);
    }
    return this.partitioner({ topic: r.topic, partitionMetadata, message: toMessage(r) });
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.lanes.some((l) => l.flushing || l.queue.length > 0)) await new Promise((r) => setTimeout(r, 10));
    await Promise.all(this.lanes.map((l) => l.producer.disconnect()));
  }
}

/** FNV-1a, 32 bits: spreads order keys over lanes. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function toMessage(r: OutgoingRecord): Message {
  return { key: r.key ?? null, value: r.value, headers: r.headers };
}

/**
 * kafkajs answers with one base offset per (topic, partition). We choose each record's partition
 * ourselves (Java's murmur2 on the key, as kafkajs's default does), so each record's offset is
 * its partition's base plus its index there, in send order.
 */
function offsetsOf(records: OutgoingRecord[], partitions: number[], results: { topicName: string; partition: number; baseOffset?: string }[]): RecordAck[] {
  const base = new Map(results.map((r) => [`${r.topicName}/${r.partition}`, BigInt(r.baseOffset ?? '-1')]));
  const seen = new Map<string, bigint>();
  return records.map((r, i) => {
    const key = `${r.topic}/${partitions[i]}`;
    const index = seen.get(key) ?? 0n;
    seen.set(key, index + 1n);
    const b = base.get(key) ?? -1n;
    return { topic: r.topic, partition: partitions[i]!, offset: b >= 0n ? String(b + index) : '-1' };
  });
}

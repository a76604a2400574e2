import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import { HubError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { KafkaBus } from './producer.ts';
import type { TopicProvisioner } from './provision.ts';
import type { OutgoingRecord } from './types.ts';

export interface TableOptions<V> {
  kafka: Kafka;
  bus: KafkaBus;
  provisioner: TopicProvisioner;
  logger: Logger;
  topic: string;
  parse: (value: Buffer) => V;
  /** Called for every change read from the topic (including this process's own writes). */
  onChange?: (key: string, value: V | undefined) => void;
  /**
   * Values that matter only for a while (e.g. dedupe markers): older ones are not loaded and are
   * dropped from memory every `sweepMs` (default a minute); the topic's retention drops them on disk.
   */
  expire?: { afterMs: number; at: (value: V) => number; sweepMs?: number };
}

/**
 * A compacted topic read into memory: every instance sees every write, the state survives
 * restarts of everything, and `ready` resolves once the topic was read up to where it ended
 * at start (read_committed, so only records of committed transactions count).
 */
export class KafkaTable<V> {
  private readonly state = new Map<string, V>();
  private consumer: Consumer | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  ready: Promise<void> = Promise.resolve();

  constructor(private readonly opts: TableOptions<V>) {}

  async start(timeoutMs = 30_000): Promise<void> {
    const { kafka, topic } = this.opts;
    await this.opts.provisioner.ensure([topic]);
    const admin = kafka.admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
    const waiting = new Map(ends.filter((e) => Number(e.high) > Number(e.low)).map((e) => [e.partition, Number(e.high) - 1]));

    const consumer = kafka.consumer({ groupId: `ionflux-table-${randomUUID()}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 250 });
    this.consumer = consumer;
    let caughtUp: () => void = () => undefined;
    this.ready = new Promise<void>((resolve, reject) => {
      caughtUp = resolve;
      setTimeout(() => reject(new HubError('table_not_ready', `reading ${topic} took over ${timeoutMs} ms`, { retryable: true })), timeoutMs).unref();
    });
    if (waiting.size === 0) caughtUp();
    // lastOffset counts transaction markers too, which is what "read up to the end" needs.
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      const target = waiting.get(payload.partition);
      if (target !== undefined && Number(payload.lastOffset) >= target) {
        waiting.delete(payload.partition);
        if (waiting.size === 0) caughtUp();
      }
    });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      // A whole fetched batch is applied in one synchronous pass (no promise per record).
      eachBatch: async ({ batch }) => {
        for (const message of batch.messages) this.apply(message.key, message.value);
      },
    });
    await this.ready;
    if (this.opts.expire) {
      this.sweeper = setInterval(() => this.sweep(), this.opts.expire.sweepMs ?? 60_000);
      this.sweeper.unref();
    }
  }

  private apply(rawKey: Buffer | null, rawValue: Buffer | null): void {
    if (!rawKey) return;
    const key = rawKey.toString();
    if (rawValue === null) {
      this.state.delete(key);
      this.opts.onChange?.(key, undefined);
      return;
    }
    try {
      const value = this.opts.parse(rawValue);
      if (this.expired(value)) return void this.state.delete(key);
      this.state.set(key, value);
      this.opts.onChange?.(key, value);
    } catch (e) {
      this.opts.logger.error({ topic: this.opts.topic, key, err: e }, 'unreadable table record skipped');
    }
  }

  private expired(value: V, now = Date.now()): boolean {
    return this.opts.expire !== undefined && now - this.opts.expire.at(value) > this.opts.expire.afterMs;
  }

  /** Drops expired values from memory; returns how many. */
  sweep(now = Date.now()): number {
    let dropped = 0;
    for (const [key, value] of this.state) if (this.expired(value, now) && this.state.delete(key)) dropped++;
    return dropped;
  }

  get size(): number {
    return this.state.size;
  }

  get(key: string): V | undefined {
    return this.state.get(key);
  }

  entries(): [string, V][] {
    return [...this.state];
  }

  /** The record that sets `key`; publish it alone or atomically with others. */
  record(key: string, value: V | undefined): OutgoingRecord {
    return { topic: this.opts.topic, key, value: value === undefined ? null : Buffer.from(JSON.stringify(value)) };
  }

  /** Writes and applies locally at once, so the writer reads its own write. */
  async set(key: string, value: V): Promise<void> {
    await this.opts.bus.publish(this.record(key, value));
    this.state.set(key, value);
  }

  async delete(key: string): Promise<void> {
    await this.opts.bus.publish(this.record(key, undefined));
    this.state.delete(key);
  }

  /** Applies a write that was published by the caller (e.g. inside a transaction with other records). */
  applyLocal(key: string, value: V | undefined): void {
    if (value === undefined) this.state.delete(key);
    else this.state.set(key, value);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await this.consumer?.disconnect();
  }
}

/** JSON values checked by a parse function (e.g. a zod schema's parse). */
export const jsonValue = <V>(check: (v: unknown) => V) => (b: Buffer) => check(JSON.parse(b.toString('utf8')));

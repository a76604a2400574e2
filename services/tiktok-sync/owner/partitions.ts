import type { Consumer, Kafka } from 'kafkajs';
import type { KafkaBus } from '../../../shared/bus/producer.ts';
import type { Logger } from '../../../shared/logger.ts';
import { FencedWriter } from './fenced-writer.ts';

export interface OwnedPartition<V> {
  partition: number;
  writer: FencedWriter;
  /** The latest value of every key in the partition (read up to where it ended when acquired). */
  records: Map<string, V>;
}

export interface PartitionOwnerOptions<V> {
  kafka: Kafka;
  bus: KafkaBus;
  logger: Logger;
  topic: string;
  groupId: string;
  /** `<prefix>-<partition>` names each partition's fenced writer. */
  transactionalPrefix: string;
  parse(value: Buffer): V;
  /** The partition is ours, fenced, and read to its end: start its work. */
  onAcquired(p: OwnedPartition<V>): Promise<void> | void;
  /** Stop the partition's work: another instance may own it now. */
  onReleased(partition: number): void;
  /** A key of an owned (acquired) partition changed. */
  onChange(partition: number, key: string, value: V | undefined): void;
}

/**
 * Who does the work for which connection: every instance joins one consumer group on the keyed
 * connections topic, and Kafka gives each partition to exactly one member. On being given a
 * partition an instance (1) fences the previous holder through the partition's transactional id,
 * (2) reads the partition up to its end (offsets are never committed, so a new holder always reads
 * it whole), then (3) starts the work. A rebalance stops all work until the new assignment is
 * acquired the same way. A value older than one already applied (a replay after a rebalance) is
 * ignored, so a key never goes back in time.
 */
export class PartitionOwner<V> {
  private consumer: Consumer | undefined;
  private readonly keys = new Map<number, Map<string, { offset: number; value: V | undefined }>>();
  private readonly readUpTo = new Map<number, number>();
  private readonly owned = new Map<number, OwnedPartition<V>>();
  private readonly waiting = new Map<number, { target: number; writer: FencedWriter }>();
  private generation = 0;
  private stopped = false;

  constructor(private readonly o: PartitionOwnerOptions<V>) {}

  async start(): Promise<void> {
    // A member that died (SIGKILL) gives its partitions up after 10 s, not after kafkajs' 60 s rebalance timeout.
    const c = this.o.kafka.consumer({ groupId: this.o.groupId, allowAutoTopicCreation: false, sessionTimeout: 10_000, rebalanceTimeout: 15_000, heartbeatInterval: 1000, maxWaitTimeInMs: 250 });
    this.consumer = c;
    c.on(c.events.REBALANCING, () => this.releaseAll());
    c.on(c.events.GROUP_JOIN, ({ payload }) => void this.assign(payload.memberAssignment[this.o.topic] ?? []).catch((e: unknown) => this.o.logger.warn({ err: e }, 'taking partitions failed; waiting for the next assignment')));
    // lastOffset counts transaction markers too, which is what "read up to the end" needs.
    c.on(c.events.END_BATCH_PROCESS, ({ payload }) => {
      this.readUpTo.set(payload.partition, Math.max(this.readUpTo.get(payload.partition) ?? -1, Number(payload.lastOffset)));
      this.checkCaughtUp(payload.partition);
    });
    await c.connect();
    await c.subscribe({ topic: this.o.topic, fromBeginning: true });
    await c.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) this.apply(batch.partition, Number(m.offset), m.key, m.value);
      },
    });
  }

  /** The acquired partition holding `partition`, if this instance owns it now. */
  ownedPartition(partition: number): OwnedPartition<V> | undefined {
    return this.owned.get(partition);
  }

  get ownedPartitions(): number[] {
    return [...this.owned.keys()];
  }

  private apply(partition: number, offset: number, rawKey: Buffer | null, raw: Buffer | null): void {
    if (!rawKey) return;
    const key = rawKey.toString();
    const keys = this.keys.get(partition) ?? new Map<string, { offset: number; value: V | undefined }>();
    this.keys.set(partition, keys);
    const prev = keys.get(key);
    if (prev && prev.offset >= offset) return; // a replay of what is already applied
    let value: V | undefined;
    try {
      value = raw === null ? undefined : this.o.parse(raw);
    } catch (e) {
      return void this.o.logger.error({ topic: this.o.topic, key, err: e }, 'unreadable connection record skipped');
    }
    keys.set(key, { offset, value });
    const owned = this.owned.get(partition);
    if (owned) {
      if (value === undefined) owned.records.delete(key);
      else owned.records.set(key, value);
      this.o.onChange(partition, key, value);
    }
  }

  private releaseAll(): void {
    this.generation++;
    for (const p of [...this.owned.keys(), ...this.waiting.keys()]) this.release(p);
  }

  private release(partition: number): void {
    const owned = this.owned.get(partition);
    const waiting = this.waiting.get(partition);
    this.owned.delete(partition);
    this.waiting.delete(partition);
    if (owned) {
      this.o.onReleased(partition);
      void owned.writer.close();
    }
    if (waiting) void waiting.writer.close();
  }

  private async assign(partitions: number[]): Promise<void> {
    const gen = ++this.generation;
    for (const p of [...this.owned.keys(), ...this.waiting.keys()]) if (!partitions.includes(p)) this.release(p);
    const admin = this.o.kafka.admin();
    await admin.connect();
    try {
      for (const p of partitions) {
        if (this.owned.has(p) || this.waiting.has(p)) continue;
        const writer = new FencedWriter({ kafka: this.o.kafka, bus: this.o.bus, logger: this.o.logger, transactionalId: `${this.o.transactionalPrefix}-${p}` });
        await writer.connect(); // fences the previous owner before anything of the partition is read as final
        if (gen !== this.generation || this.stopped) return void (await writer.close());
        const offsets = (await admin.fetchTopicOffsets(this.o.topic)).find((o) => o.partition === p);
        const target = offsets && Number(offsets.high) > Number(offsets.low) ? Number(offsets.high) - 1 : -1;
        this.waiting.set(p, { target, writer });
        this.checkCaughtUp(p);
      }
    } finally {
      await admin.disconnect();
    }
  }

  private checkCaughtUp(partition: number): void {
    const w = this.waiting.get(partition);
    if (!w || (this.readUpTo.get(partition) ?? -1) < w.target) return;
    this.waiting.delete(partition);
    const records = new Map<string, V>();
    for (const [k, e] of this.keys.get(partition) ?? []) if (e.value !== undefined) records.set(k, e.value);
    const owned: OwnedPartition<V> = { partition, writer: w.writer, records };
    this.owned.set(partition, owned);
    this.o.logger.info({ topic: this.o.topic, partition, keys: records.size }, 'partition acquired');
    void Promise.resolve(this.o.onAcquired(owned)).catch((e: unknown) => this.o.logger.warn({ err: e, partition }, 'starting partition work failed'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.releaseAll();
    await this.consumer?.disconnect();
  }
}

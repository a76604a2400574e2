import type { Consumer, Kafka, Producer, TopicMessages } from 'kafkajs';
import { HubError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { connectFenced, hubProducer } from './fence.ts';
import type { FencedWriter, OutgoingRecord, OwnedPartition, Ownership, OwnershipOptions, PartitionOffsets, PlacedRecord } from '../types.ts';

export interface OwnershipDeps {
  kafka: Kafka;
  logger: Logger;
  /** The producer's placement of records (partition by key hash, topics ensured). */
  requestOf(records: OutgoingRecord[]): Promise<{ topicMessages: TopicMessages[] }>;
  offsets(topic: string): Promise<PartitionOffsets[]>;
}

const FENCED = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 'INVALID_PRODUCER_ID_MAPPING']);

/**
 * The writer of one partition: transactional id `<prefix>-<partition>`, so connecting it
 * (connectFenced) fences the previous holder (Kafka aborts what that one left open and refuses
 * its later commits). Once
 * fenced it is dead and says so; other failures abort the transaction and can be retried.
 */
class KafkaFencedWriter implements FencedWriter {
  private producer: Producer;
  private chain: Promise<unknown> = Promise.resolve();
  dead = false;

  constructor(private readonly d: OwnershipDeps, private readonly transactionalId: string) {
    this.producer = this.newProducer();
  }

  private newProducer(): Producer {
    return hubProducer(this.d.kafka, this.transactionalId);
  }

  private connected: Promise<void> | undefined;

  connect(): Promise<void> {
    this.connected ??= connectFenced(this.producer).catch((e: unknown) => {
      this.connected = undefined;
      throw e;
    });
    return this.connected;
  }

  send(placed: PlacedRecord[]): Promise<void> {
    const run = this.chain.then(() => this.sendNow(placed));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async sendNow(placed: PlacedRecord[]): Promise<void> {
    if (this.dead) throw new HubError('ownership_lost', `${this.transactionalId} was fenced by another member`);
    const { topicMessages } = await this.d.requestOf(placed.map((p) => p.record));
    // requestOf placed each record by its key (in order per topic); move those given a partition.
    const byTopic = new Map(topicMessages.map((t) => [t.topic, t]));
    const index = new Map<string, number>();
    for (const p of placed) {
      const i = index.get(p.record.topic) ?? 0;
      index.set(p.record.topic, i + 1);
      if (p.partition !== undefined) byTopic.get(p.record.topic)!.messages[i]!.partition = p.partition;
    }
    await this.connect();
    const txn = await this.producer.transaction();
    try {
      await txn.sendBatch({ topicMessages, acks: -1 });
      await txn.commit();
    } catch (e) {
      if (FENCED.has((e as { type?: string }).type ?? '') || /fenced|epoch/i.test((e as Error).message)) {
        this.dead = true;
        await this.producer.disconnect().catch(() => undefined);
        throw new HubError('ownership_lost', `${this.transactionalId} was fenced by another member`, { cause: e });
      }
      await txn.abort().catch(() => undefined);
      // Aborted or unusable (broker gone mid-transaction), the next transaction gets a new
      // producer of the same id: its new epoch fences this one, and its sequence numbers start
      // again, so records of the next transaction are never taken for a retry of this one's
      // (see producer.ts, Lane.send).
      void this.producer.disconnect().catch(() => undefined);
      this.producer = this.newProducer();
      this.connected = undefined;
      throw new HubError('publish_failed', `transaction of ${this.transactionalId} failed: ${(e as Error).message}`, { retryable: true, cause: e });
    }
  }

  async close(): Promise<void> {
    this.dead = true;
    await this.chain;
    await this.producer.disconnect().catch(() => undefined);
  }
}

/**
 * Ownership through a consumer group on the keyed topic: Kafka gives each partition to one member.
 * Taking a partition, a member (1) connects the partition's fenced writer, (2) reads the partition
 * up to its end (offsets are never committed, so every new holder reads it whole), (3) hands it to
 * `onAcquired`. A rebalance releases everything first. A value older than one already applied (a
 * replay after a rebalance) is ignored, so a key never goes back in time.
 */
export async function startOwnership<V>(d: OwnershipDeps, o: OwnershipOptions<V>): Promise<Ownership> {
  const keys = new Map<number, Map<string, { offset: bigint; value: V | undefined }>>();
  const readUpTo = new Map<number, bigint>();
  const owned = new Map<number, OwnedPartition<V> & { writer: KafkaFencedWriter }>();
  const waiting = new Map<number, { target: bigint; writer: KafkaFencedWriter }>();
  let generation = 0;
  let stopped = false;

  function apply(partition: number, offset: bigint, rawKey: Buffer | null, raw: Buffer | null): void {
    if (!rawKey) return;
    const key = rawKey.toString();
    const map = keys.get(partition) ?? new Map<string, { offset: bigint; value: V | undefined }>();
    keys.set(partition, map);
    const prev = map.get(key);
    if (prev && prev.offset >= offset) return;
    let value: V | undefined;
    try {
      value = raw === null ? undefined : o.parse(raw);
    } catch (e) {
      return void d.logger.error({ topic: o.topic, key, err: e }, 'unreadable record skipped');
    }
    map.set(key, { offset, value });
    const mine = owned.get(partition);
    if (!mine) return;
    if (value === undefined) mine.records.delete(key);
    else mine.records.set(key, value);
    o.onChange(partition, key, value);
  }

  function release(partition: number): void {
    const mine = owned.get(partition);
    const pending = waiting.get(partition);
    owned.delete(partition);
    waiting.delete(partition);
    if (mine) {
      o.onReleased(partition);
      void mine.writer.close();
    }
    if (pending) void pending.writer.close();
  }

  const releaseAll = () => {
    generation++;
    for (const p of [...owned.keys(), ...waiting.keys()]) release(p);
  };

  function checkCaughtUp(partition: number): void {
    const w = waiting.get(partition);
    if (!w || (readUpTo.get(partition) ?? -1n) < w.target) return;
    waiting.delete(partition);
    const records = new Map<string, V>();
    for (const [k, e] of keys.get(partition) ?? []) if (e.value !== undefined) records.set(k, e.value);
    const mine = { partition, writer: w.writer, records };
    owned.set(partition, mine);
    d.logger.info({ topic: o.topic, partition, keys: records.size }, 'partition acquired');
    void Promise.resolve(o.onAcquired(mine)).catch((e: unknown) => d.logger.warn({ err: e, partition }, 'starting the work of a partition failed'));
  }

  async function assign(partitions: number[]): Promise<void> {
    const gen = ++generation;
    for (const p of [...owned.keys(), ...waiting.keys()]) if (!partitions.includes(p)) release(p);
    const ends = await d.offsets(o.topic);
    for (const p of partitions) {
      if (owned.has(p) || waiting.has(p)) continue;
      const writer = new KafkaFencedWriter(d, `${o.transactionalPrefix}-${p}`);
      await writer.connect(); // fences the previous holder before anything is read as final
      if (gen !== generation || stopped) return void (await writer.close());
      const end = ends.find((e) => e.partition === p);
      // The end as of now, after the fence: whatever the previous holder committed is before it.
      const fresh = (await d.offsets(o.topic)).find((e) => e.partition === p) ?? end;
      const target = fresh && BigInt(fresh.high) > BigInt(fresh.low) ? BigInt(fresh.high) - 1n : -1n;
      waiting.set(p, { target, writer });
      checkCaughtUp(p);
    }
  }

  // A member that died (SIGKILL) gives its partitions up after 10 s, not after a 60 s rebalance timeout.
  const c: Consumer = d.kafka.consumer({ groupId: o.groupId, allowAutoTopicCreation: false, sessionTimeout: 10_000, rebalanceTimeout: 15_000, heartbeatInterval: 1000, maxWaitTimeInMs: 250 });
  c.on(c.events.REBALANCING, releaseAll);
  c.on(c.events.GROUP_JOIN, ({ payload }) => void assign(payload.memberAssignment[o.topic] ?? []).catch((e: unknown) => d.logger.warn({ err: e }, 'taking partitions failed; waiting for the next assignment')));
  // lastOffset counts transaction markers too, which is what "read up to the end" needs.
  c.on(c.events.END_BATCH_PROCESS, ({ payload }) => {
    readUpTo.set(payload.partition, [readUpTo.get(payload.partition) ?? -1n, BigInt(payload.lastOffset)].reduce((a, b) => (a > b ? a : b)));
    checkCaughtUp(payload.partition);
  });
  await c.connect();
  await c.subscribe({ topic: o.topic, fromBeginning: true });
  await c.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) apply(batch.partition, BigInt(m.offset), m.key, m.value);
    },
  });
  return {
    async stop() {
      stopped = true;
      releaseAll();
      await c.disconnect();
    },
  };
}

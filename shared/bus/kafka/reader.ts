import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import type { Logger } from '../../logger.ts';
import type { PartitionOffsets, ReadBatch, Reader, ReadOptions } from '../types.ts';
import { toRecord } from './records.ts';

export interface ReaderDeps {
  kafka: Kafka;
  logger: Logger;
  /** Group ids are `<groupPrefix><uuid>` (default `ionflux-reader-`). */
  groupPrefix?: string;
  offsets: (topic: string) => Promise<PartitionOffsets[]>;
  listTopics: () => Promise<string[]>;
}

/**
 * Reads committed records outside any consumer group (a group of its own that never commits).
 * Every partition is seeked explicitly to where `from` says, so nothing written between the
 * offsets lookup and the group join is skipped. "Caught up" compares each partition's position
 * with its high watermark taken at start; the position comes from the fetched batches
 * themselves, transaction markers included, never from an empty fetch (kafkajs reports those as
 * high watermark - 1 although records before it may still be waiting for their commit markers).
 */
export async function startReader(deps: ReaderDeps, o: ReadOptions): Promise<Reader> {
  const existing = typeof o.topic === 'string' ? (await deps.listTopics()).filter((t) => t === o.topic) : (await deps.listTopics()).filter((t) => (o.topic as RegExp).test(t));
  const starts = new Map<string, string>();
  const waiting = new Map<string, bigint>();
  for (const topic of existing) {
    for (const p of await deps.offsets(topic)) {
      const given = o.from instanceof Map ? o.from.get(p.partition) : undefined;
      const start = o.from === 'end' ? p.high : (given ?? p.low);
      starts.set(`${topic}/${p.partition}`, start);
      if (BigInt(start) < BigInt(p.high)) waiting.set(`${topic}/${p.partition}`, BigInt(p.high));
    }
  }

  let caughtUp!: () => void;
  const caught = new Promise<void>((resolve) => (caughtUp = resolve));
  const advanced = (tp: string, next: string) => {
    const target = waiting.get(tp);
    if (target !== undefined && BigInt(next) >= target) waiting.delete(tp);
    if (waiting.size === 0) caughtUp();
  };
  if (waiting.size === 0) caughtUp();

  // One chain per partition: a batch of markers only (seen through kafkajs's instrumentation
  // event, not eachBatch) must be handed over in order with the batches around it.
  const chains = new Map<string, Promise<void>>();
  const positions = new Map(starts); // next offset to hand over, per partition
  const handOver = (batch: ReadBatch): Promise<void> => {
    const tp = `${batch.topic}/${batch.partition}`;
    const next = (chains.get(tp) ?? Promise.resolve()).then(async () => {
      await o.onBatch(batch);
      positions.set(tp, batch.next);
      advanced(tp, batch.next);
    });
    chains.set(tp, next);
    return next;
  };

  const groupId = `${deps.groupPrefix ?? 'ionflux-reader-'}${randomUUID()}`;
  // A plain topic that does not exist yet is subscribed by its exact name as a pattern, so it
  // is read once created instead of failing the subscription.
  const topic = typeof o.topic === 'string' && existing.length === 0 ? new RegExp(`^${o.topic.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : o.topic;
  let closed = false;
  let current: Consumer | undefined;
  let restarting: Promise<void> = Promise.resolve();
  let wake: (() => void) | undefined; // ends a wait between restarts when the reader is closed

  const startConsumer = async (): Promise<Consumer> => {
    const consumer = deps.kafka.consumer({ groupId, allowAutoTopicCreation: false, maxWaitTimeInMs: o.fetch?.maxWaitMs ?? 250, minBytes: o.fetch?.minBytes ?? 1 });
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.batchSize > 0) return; // eachBatch has handed it over
      const batch = { topic: payload.topic, partition: payload.partition, records: [], next: String(BigInt(payload.lastOffset) + 1n) };
      handOver(batch).catch((e: unknown) => deps.logger.error({ topic: batch.topic, err: e }, 'reader failed on a batch of markers'));
    });
    // Every (re)join seeks each partition to where this reader stands: the first join to the
    // start positions, a join after a restart to the next unhanded offset (the group commits
    // nothing, so kafkajs alone would start over from its default).
    consumer.on(consumer.events.GROUP_JOIN, () => {
      for (const [tp, offset] of positions) {
        const cut = tp.lastIndexOf('/');
        consumer.seek({ topic: tp.slice(0, cut), partition: Number(tp.slice(cut + 1)), offset });
      }
    });
    // A crash kafkajs does not restart from (e.g. "Failed to find group coordinator" after a broker
    // restart) would leave a table answering from what it read until then, for good: start a new
    // consumer, which goes on from the positions handed over.
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (payload.restart || closed) return;
      deps.logger.warn({ topic: String(o.topic), err: payload.error }, 'reader stopped by an error kafkajs does not retry; starting a new one');
      restarting = restarting.then(async () => {
        if (current !== consumer || closed) return;
        current = undefined;
        await consumer.disconnect().catch(() => undefined);
        for (let attempt = 1; !closed && !current; attempt++) {
          await new Promise<void>((r) => {
            wake = r;
            setTimeout(r, Math.min(10_000, 500 * attempt)).unref();
          });
          if (closed) break;
          current = await startConsumer().catch((e: unknown) => (deps.logger.warn({ topic: String(o.topic), err: e }, 'reader not restarted yet; retrying'), undefined));
        }
      });
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: o.from !== 'end' });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const records = batch.messages.map((m) => toRecord(batch.topic, batch.partition, m));
          await handOver({ topic: batch.topic, partition: batch.partition, records, next: String(BigInt(batch.lastOffset()) + 1n) });
        },
      });
    } catch (e) {
      await consumer.disconnect().catch(() => undefined);
      throw e;
    }
    return consumer;
  };
  current = await startConsumer();
  return {
    caughtUp: caught,
    close: async () => {
      closed = true;
      wake?.();
      await restarting;
      await current?.disconnect();
    },
  };
}

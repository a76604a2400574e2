import type { Consumer, Kafka, Producer, TopicMessages } from 'kafkajs';
import type { Logger } from '../../logger.ts';
import type { OutgoingRecord, Subscription, TransformOptions } from '../types.ts';
import { connectFenced, hubProducer } from './fence.ts';
import { toRecord } from './records.ts';

export interface TransformDeps {
  kafka: Kafka;
  logger: Logger;
  /** The producer's placement of records (partition by key hash, topics ensured). */
  requestOf(records: OutgoingRecord[]): Promise<{ topicMessages: TopicMessages[] }>;
}

const FENCED = /fenced|epoch|PRODUCER_FENCED|INVALID_PRODUCER_EPOCH|TRANSACTIONAL_ID_AUTHORIZATION_FAILED/i;

/** A partition's writer for one assignment: connecting it fences every earlier holder of the id. */
interface PartitionWriter {
  producer: Producer;
  /** Fenced, state brought up to date: the partition's batches may be worked on. */
  ready: Promise<void>;
  dead: boolean;
}

/**
 * See TransformOptions. kafkajs has no KIP-447 group-aware offset commits, so zombies are fenced
 * the classic way (KIP-98): one transactional id per input partition. Each (re)assignment starts
 * with fresh writers, so a member that lost a partition, even for a moment, cannot commit a batch
 * of it read before the loss. Consumed offsets are committed only inside the transactions
 * (autoCommit off); a batch whose transaction failed is re-read from the last committed offset.
 */
export async function startTransform(d: TransformDeps, o: TransformOptions): Promise<Subscription> {
  const writers = new Map<number, PartitionWriter>();
  /** Per partition, the offset after the last batch committed in this assignment (or where its first batch was fetched from). */
  const positions = new Map<number, bigint>();
  let stopped = false;

  const newWriter = (partition: number): PartitionWriter => {
    const producer = hubProducer(d.kafka, `${o.transactionalPrefix}-${partition}`);
    const w: PartitionWriter = { producer, dead: false, ready: Promise.resolve() };
    w.ready = (async () => {
      // The previous holder's open transaction is aborted and its commits refused before the
      // state it committed is read (onAssigned).
      await connectFenced(producer);
      await o.onAssigned?.(partition);
    })();
    w.ready.catch(() => (w.dead = true));
    return w;
  };
  const retire = (w: PartitionWriter) => {
    w.dead = true;
    void w.ready.catch(() => undefined).then(() => w.producer.disconnect()).catch(() => undefined);
  };

  const newConsumer = (): Consumer => d.kafka.consumer({
    groupId: o.groupId,
    allowAutoTopicCreation: false,
    // A member that died gives its partitions up after the session timeout, not a 60 s rebalance timeout.
    sessionTimeout: o.sessionTimeoutMs ?? 10_000,
    rebalanceTimeout: 15_000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: o.fetch?.maxWaitMs ?? 100,
    minBytes: o.fetch?.minBytes ?? 1,
  });
  let c = newConsumer();
  const start = async (c: Consumer) => {
    c.on(c.events.GROUP_JOIN, ({ payload }) => {
      for (const w of writers.values()) retire(w);
      writers.clear();
      positions.clear(); // kafkajs starts each assigned partition at its committed offset
      for (const p of payload.memberAssignment[o.topic] ?? []) writers.set(p, newWriter(p));
      d.logger.info({ topic: o.topic, group: o.groupId, partitions: payload.memberAssignment[o.topic] ?? [] }, 'transform partitions assigned');
    });
    // A crash kafkajs does not restart from (e.g. no group coordinator after a broker restart):
    // a new consumer takes over, so the partitions are not left without an owner in this member.
    c.on(c.events.CRASH, ({ payload }) => {
      if (payload.restart || stopped) return;
      d.logger.warn({ topic: o.topic, err: payload.error }, 'transform consumer stopped by an error kafkajs does not retry; starting a new one');
      void (async () => {
        await c.disconnect().catch(() => undefined);
        for (let attempt = 1; !stopped; attempt++) {
          await sleep(Math.min(10_000, 500 * attempt));
          const next = newConsumer();
          try {
            await start(next);
            c = next;
            return;
          } catch (e) {
            await next.disconnect().catch(() => undefined);
            d.logger.warn({ topic: o.topic, err: e }, 'transform consumer not restarted yet; retrying');
          }
        }
      })();
    });
    await c.connect();
    await c.subscribe({ topic: o.topic, fromBeginning: true });
    await c.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: o.partitionsConsumedConcurrently ?? 64,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const { partition } = batch;
        if (!writers.get(partition)) {
          // Not ours (any more): left unresolved; whoever owns it reads it from its committed offset.
          await sleep(200);
          return;
        }
        // Batches must follow one another: one fetched from elsewhere than where this partition's
        // work stands (prefetched while an earlier batch failed, or from before a seek) would
        // skip records once resolved, so the partition is read again from there.
        const expected = positions.get(partition);
        const fetched = BigInt((batch as unknown as { fetchedOffset: string }).fetchedOffset); // kafkajs has it, its typings do not
        if (expected === undefined) positions.set(partition, fetched);
        else if (fetched !== expected) return void (isStale() || c.seek({ topic: o.topic, partition, offset: String(expected) }));
        if (batch.messages.length === 0) return;
        const records = batch.messages.map((m) => toRecord(batch.topic, partition, m));
        const next = String(BigInt(batch.lastOffset()) + 1n);
        for (let attempt = 1; ; attempt++) {
          const writer = writers.get(partition);
          if (!isRunning() || isStale() || stopped || !writer) return;
          try {
            await writer.ready;
            const out = await o.transform(records, partition);
            await commit(d, writer, o, partition, out.records, next);
            resolveOffset(batch.lastOffset());
            d.logger.debug({ topic: o.topic, partition, from: String(fetched), first: batch.messages[0]?.offset, next, records: records.length, out: out.records.length }, 'transform batch committed');
            positions.set(partition, BigInt(next));
            out.committed?.();
            return;
          } catch (e) {
            if (FENCED.test(`${(e as { type?: string }).type ?? ''} ${(e as Error).message}`)) {
              d.logger.warn({ topic: o.topic, partition }, 'partition writer fenced by another member; leaving the partition to it');
              if (writers.get(partition) === writer) writers.delete(partition);
              retire(writer);
              return;
            }
            d.logger.warn({ topic: o.topic, partition, attempt, err: e }, 'transform batch not committed; retrying');
            // The transaction may have committed even so (an EndTxn that took effect but answered an
            // error): a new writer of the same id completes whatever is pending, and its onAssigned
            // reads the state it wrote before the batch is worked on again.
            if (writers.get(partition) === writer) {
              retire(writer);
              writers.set(partition, newWriter(partition));
            }
            await sleep(Math.min(1000, 20 * 2 ** Math.min(attempt, 6)));
            await heartbeat().catch(() => undefined);
          }
        }
      },
    });
  };
  await start(c);
  return {
    async stop() {
      stopped = true;
      await c.disconnect();
      for (const w of writers.values()) retire(w);
      writers.clear();
    },
  };
}

async function commit(d: TransformDeps, w: PartitionWriter, o: TransformOptions, partition: number, records: OutgoingRecord[], next: string): Promise<void> {
  const { topicMessages } = records.length ? await d.requestOf(records) : { topicMessages: [] };
  const txn = await w.producer.transaction();
  try {
    if (topicMessages.length) await txn.sendBatch({ topicMessages, acks: -1 });
    await txn.sendOffsets({ consumerGroupId: o.groupId, topics: [{ topic: o.topic, partitions: [{ partition, offset: next }] }] });
    await txn.commit();
  } catch (e) {
    await txn.abort().catch(async () => {
      // Unusable (broker gone mid-transaction): the next attempt needs a writer of the same id.
      w.dead = true;
    });
    throw e;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

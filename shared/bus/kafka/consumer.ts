import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { describeError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { deadLetterRecord } from '../dead-letter.ts';
import { backoffDelay, defaultClassify } from '../policy.ts';
import { topicPattern, topics } from '../topics.ts';
import type { IncomingRecord, OutgoingRecord, RecordAck, SubscribeOptions, Subscription } from '../types.ts';
import { toRecord } from './records.ts';


/**
 * eachBatch runner: records are handled in order per partition, an offset is committed only
 * after its record was handled (or dead-lettered), and a failing partition never blocks others.
 */
export async function runConsumer(kafka: Kafka, deps: { publish: (r: OutgoingRecord) => Promise<RecordAck>; listTopics: () => Promise<string[]>; logger: Logger }, opts: SubscribeOptions): Promise<Subscription> {
  const newConsumer = () =>
    kafka.consumer({
      groupId: opts.groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: opts.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: 1000,
      maxWaitTimeInMs: 1000,
      retry: { retries: 10 },
    });
  const classify = opts.classify ?? defaultClassify;
  const maxAttempts = opts.maxAttempts ?? 5;
  const backoff = opts.backoffMs ?? { initial: 200, max: 10_000 };
  const dlqTopic = topics.deadLetter(opts.service);
  const subscriptions = opts.subscriptions.map((s) => (typeof s === 'string' ? topicPattern(s) : s));
  const patterns = subscriptions.filter((s): s is RegExp => s instanceof RegExp);
  const matching = async () => new Set((await deps.listTopics()).filter((t) => patterns.some((p) => p.test(t))));
  let stopping = false;
  async function deadLetter(record: IncomingRecord, error: unknown, attempts: number): Promise<void> {
    await deps.publish(deadLetterRecord({ dlqTopic, service: opts.service, record, message: record, error, attempts }));
    deps.logger.warn({ topic: record.topic, partition: record.partition, offset: record.offset, error: describeError(error) }, 'record dead-lettered');
    await opts.onDeadLetter?.(record, error);
  }

  /**
   * Handles one record to the end: 'done' (handled or dead-lettered) or 'paused'. With `queued`,
   * work the handler queued is pushed there instead of awaited here.
   */
  async function handleOne(p: EachBatchPayload, message: KafkaMessage, canPause: boolean, queued?: Promise<unknown>[]): Promise<'done' | 'paused' | 'stopped'> {
    const record = toRecord(p.batch.topic, p.batch.partition, message);
    for (let attempts = 1; ; attempts++) {
      try {
        const handled = await opts.handler(record);
        if (handled && queued) {
          handled.settled.catch(() => undefined); // awaited (and acted on) by the caller
          queued.push(handled.settled);
        } else if (handled) await handled.settled;
        return 'done';
      } catch (e) {
        let verdict = classify(e);
        if (verdict.action === 'retry' && attempts >= maxAttempts) verdict = { action: 'dead_letter' };
        if (verdict.action === 'pause' && !canPause) verdict = attempts >= maxAttempts ? { action: 'dead_letter' } : { action: 'retry' };
        if (verdict.action === 'dead_letter') {
          await deadLetter(record, e, attempts);
          return 'done';
        }
        if (verdict.action === 'pause') {
          // Leave the offset unresolved: the record is fetched again once the partition resumes.
          const resume = p.pause();
          setTimeout(resume, verdict.ms).unref();
          return 'paused';
        }
        await sleep(backoffDelay(attempts, backoff));
        await p.heartbeat();
        if (!p.isRunning() || stopping) return 'stopped';
      }
    }
  }

  async function handleBatch(p: EachBatchPayload): Promise<void> {
    if (opts.concurrentKeys) return handleBatchByKey(p);
    for (const message of p.batch.messages) {
      if (!p.isRunning() || p.isStale() || stopping) break;
      if ((await handleOne(p, message, true)) !== 'done') return;
      p.resolveOffset(message.offset);
      await p.commitOffsetsIfNecessary();
      await p.heartbeat();
    }
  }

  /**
   * Records with different keys run concurrently, records of one key in order; offsets are
   * resolved up to the first record not yet done, so a crash redelivers only unfinished work.
   */
  async function handleBatchByKey(p: EachBatchPayload): Promise<void> {
    const messages = p.batch.messages;
    const done = new Array<boolean>(messages.length).fill(false);
    const queued = messages.map((): Promise<unknown>[] => []);
    const chains = new Map<string, Promise<void>>();
    const heartbeat = setInterval(() => void p.heartbeat().catch(() => undefined), 1000);
    try {
      messages.forEach((message, i) => {
        const key = message.key?.toString('latin1') ?? '';
        const chain = (chains.get(key) ?? Promise.resolve()).then(async () => {
          if (!p.isRunning() || p.isStale() || stopping) return;
          if ((await handleOne(p, message, false, queued[i])) === 'done') done[i] = true;
        });
        chains.set(key, chain);
      });
      await Promise.all(chains.values());
      // What the handlers queued must have landed before an offset moves past it; a record
      // whose queued work failed runs again, awaited this time (its handler sees what it queued).
      for (let i = 0; i < messages.length; i++) {
        if (!done[i]) continue;
        const failed = (await Promise.allSettled(queued[i]!)).some((r) => r.status === 'rejected');
        if (failed) done[i] = !(!p.isRunning() || p.isStale() || stopping) && (await handleOne(p, messages[i]!, false)) === 'done';
      }
    } finally {
      clearInterval(heartbeat);
    }
    const firstOpen = done.indexOf(false);
    const last = firstOpen === -1 ? messages.length - 1 : firstOpen - 1;
    if (last >= 0) p.resolveOffset(messages[last]!.offset);
    await p.commitOffsetsIfNecessary();
  }

  /** A consumer subscribed to every subscription as it stands now, running. */
  async function start() {
    const consumer = newConsumer();
    try {
      await consumer.connect();
      for (const s of subscriptions) await consumer.subscribe({ topic: s, fromBeginning: opts.fromBeginning ?? false });
      await consumer.run({
        eachBatchAutoResolve: false,
        autoCommit: true,
        autoCommitInterval: 1000,
        partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently ?? 1,
        eachBatch: handleBatch,
      });
    } catch (e) {
      await consumer.disconnect().catch(() => undefined);
      throw e;
    }
    return consumer;
  }

  let known = patterns.length ? await matching() : new Set<string>();
  let consumer: Consumer | undefined = await start();

  // kafkajs resolves a pattern once, when it subscribes: a topic created later (a new workspace's
  // command topic) would never be read. The topic list is watched instead, and when a new topic
  // matches, the consumer leaves the group cleanly (in-flight records finish and commit) and joins
  // again subscribed to it. A new topic's partitions start where `fromBeginning` says.
  let watching: Promise<void> = Promise.resolve();
  const rescan = async () => {
    if (stopping) return;
    const now = await matching();
    const added = [...now].filter((t) => !known.has(t));
    if (consumer && added.length === 0) return;
    if (consumer) {
      deps.logger.info({ group: opts.groupId, topics: added }, 'new topics match the subscription; rejoining the group');
      const leaving = consumer;
      consumer = undefined;
      await leaving.disconnect();
    }
    if (stopping) return;
    consumer = await start();
    known = now;
  };
  const watcher = patterns.length
    ? setInterval(() => {
        watching = watching.then(rescan).catch((e: unknown) => deps.logger.warn({ group: opts.groupId, err: describeError(e) }, 'could not rejoin with new topics; retrying'));
      }, opts.rescanTopicsMs ?? 5000)
    : undefined;

  return {
    async stop() {
      stopping = true;
      clearInterval(watcher);
      await watching;
      // kafkajs waits for the running batch, commits resolved offsets and leaves the group.
      await consumer?.disconnect();
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

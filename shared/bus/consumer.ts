import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { describeError, HubError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { deadLetterRecord } from './dead-letter.ts';
import { topicPattern, topics } from './topics.ts';
import { headersToStrings, type Bus, type IncomingRecord } from './types.ts';

/** What the runner does with a record whose handler failed. */
export type FailureAction =
  | { action: 'retry' } // transient: try again in place, with backoff, up to maxAttempts
  | { action: 'dead_letter' } // will never succeed: park it with the reason, move on
  | { action: 'pause'; ms: number }; // e.g. a rate limit: stop this partition only, re-read it later

/**
 * The default table, per error class:
 * - HubError `rate_limited` with `retryAfterMs` -> pause the partition that long (others go on)
 * - HubError retryable                          -> retry with backoff, then dead-letter
 * - anything else (poison, bad input, bugs)      -> dead-letter at once
 */
export function defaultClassify(e: unknown): FailureAction {
  if (e instanceof HubError && e.code === 'rate_limited') return { action: 'pause', ms: Number((e as HubError & { retryAfterMs?: number }).retryAfterMs ?? 1000) };
  if (e instanceof HubError && e.retryable) return { action: 'retry' };
  return { action: 'dead_letter' };
}

export interface ConsumerRunnerOptions {
  kafka: Kafka;
  bus: Bus;
  logger: Logger;
  /** Names dead letters `ionflux.dlq.<service>` and tags their headers. */
  service: string;
  groupId: string;
  /** Topic names or patterns (see topicPattern). */
  subscriptions: (string | RegExp)[];
  fromBeginning?: boolean;
  /**
   * Handles one record. It may return `{ settled }`: work it queued (e.g. a produce) that must
   * succeed before the record's offset is committed. With concurrentKeys the runner goes on with
   * the key's next record meanwhile and awaits every `settled` before resolving offsets; a
   * rejected one re-runs its record. Otherwise `settled` is awaited in place.
   */
  handler: (record: IncomingRecord) => Promise<void | Handled>;
  classify?: (e: unknown) => FailureAction;
  maxAttempts?: number;
  backoffMs?: { initial: number; max: number };
  partitionsConsumedConcurrently?: number;
  sessionTimeoutMs?: number;
  /** Run records of different keys concurrently within a batch (order is kept per key). */
  concurrentKeys?: boolean;
  /** How often resolved offsets are committed in the background (default 500 ms). */
  commitIntervalMs?: number;
  /** Called after a record is dead-lettered (metrics, failure events). */
  onDeadLetter?: (record: IncomingRecord, error: unknown) => Promise<void> | void;
}

export interface Handled {
  settled: Promise<unknown>;
}

export interface ConsumerRunner {
  consumer: Consumer;
  /** Finishes in-flight records, commits, leaves the group. */
  stop(): Promise<void>;
}

/**
 * eachBatch runner: records are handled in order per partition, an offset is committed only
 * after its record was handled (or dead-lettered), and a failing partition never blocks others.
 */
export async function runConsumer(opts: ConsumerRunnerOptions): Promise<ConsumerRunner> {
  const consumer = opts.kafka.consumer({
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
  let stopping = false;
  /** Per topic|partition, the offset after the last record handled: what a commit should say. */
  const lastResolved = new Map<string, string>();
  const resolve = (p: EachBatchPayload, offset: string) => {
    p.resolveOffset(offset);
    lastResolved.set(`${p.batch.topic}|${p.batch.partition}`, String(BigInt(offset) + 1n));
  };

  await consumer.connect();
  for (const s of opts.subscriptions) {
    await consumer.subscribe({ topic: typeof s === 'string' ? topicPattern(s) : s, fromBeginning: opts.fromBeginning ?? false });
  }

  async function deadLetter(record: IncomingRecord, message: KafkaMessage, error: unknown, attempts: number): Promise<void> {
    await opts.bus.publish(deadLetterRecord({ dlqTopic, service: opts.service, record, message, error, attempts }));
    opts.logger.warn({ topic: record.topic, partition: record.partition, offset: record.offset, error: describeError(error) }, 'record dead-lettered');
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
          await deadLetter(record, message, e, attempts);
          return 'done';
        }
        if (verdict.action === 'pause') {
          // Leave the offset unresolved: the record is fetched again once the partition resumes.
          const resume = p.pause();
          setTimeout(resume, verdict.ms).unref();
          return 'paused';
        }
        const delay = Math.min(backoff.max, backoff.initial * 2 ** (attempts - 1));
        await sleep(delay / 2 + Math.random() * (delay / 2));
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
      resolve(p, message.offset);
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
    if (last >= 0) resolve(p, messages[last]!.offset);
  }

  // Offsets are committed in the background, not by kafkajs after every batch: its auto-commit
  // awaits an OffsetCommit between every fetch, and Kafka 4's group coordinator answers that in
  // 7-25 ms (it batches its appends), which every record then waits for. A record is done (and its
  // offset resolved) only after what it queued was acknowledged, so committing later can only
  // redeliver finished records, which handlers recognise; it never skips one.
  const resolved = new Map<string, { topic: string; partition: number; offset: string }>();
  let committing: Promise<void> = Promise.resolve();
  const commit = () =>
    (committing = committing.then(async () => {
      const offsets = [...resolved.values()];
      resolved.clear();
      if (offsets.length) await consumer.commitOffsets(offsets).catch((e: unknown) => opts.logger.debug({ err: e }, 'offset commit failed; the next one covers it'));
    }));
  const committer = setInterval(() => void commit(), opts.commitIntervalMs ?? 500);
  committer.unref();

  await consumer.run({
    eachBatchAutoResolve: false,
    autoCommit: false,
    partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently ?? 1,
    eachBatch: async (p) => {
      await handleBatch(p);
      // What handleBatch resolved: the next offset to read, committed by the timer.
      const next = lastResolved.get(`${p.batch.topic}|${p.batch.partition}`);
      if (next !== undefined) resolved.set(`${p.batch.topic}|${p.batch.partition}`, { topic: p.batch.topic, partition: p.batch.partition, offset: next });
      // Stopping: kafkajs leaves the group right after this batch, so commit now, while still a member.
      if (stopping) await commit();
    },
  });

  return {
    consumer,
    async stop() {
      stopping = true;
      clearInterval(committer);
      // Commit what earlier batches resolved; the running batch commits its own as it ends
      // (kafkajs waits for it before leaving the group).
      await commit();
      await consumer.disconnect();
    },
  };
}

function toRecord(topic: string, partition: number, m: KafkaMessage): IncomingRecord {
  return { topic, partition, offset: m.offset, key: m.key, value: m.value, headers: headersToStrings(m.headers), timestamp: m.timestamp };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { describeError, HandedOver } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { deadLetterRecord } from '../dead-letter.ts';
import { backoffDelay, defaultClassify } from '../policy.ts';
import { topicPattern, topics } from '../topics.ts';
import type { IncomingRecord, OutgoingRecord, RecordAck, SubscribeOptions, Subscription } from '../types.ts';
import { PendingOffsets, type TopicPartitionOffset } from './pending-offsets.ts';
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
      sessionTimeout: opts.sessionTimeoutMs ?? 10_000,
      rebalanceTimeout: opts.rebalanceTimeoutMs ?? 60_000,
      heartbeatInterval: 1000,
      // A partition resumed after a detached record or a deferral joins the next fetch, not the one
      // already waiting at the broker: with detach on, that wait is kept short.
      maxWaitTimeInMs: opts.detach ? 250 : 1000,
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
  /** Rejoins (new topics, a crashed consumer) one at a time. */
  let watching: Promise<void> = Promise.resolve();
  /** Set while the consumer leaves the group (stopping, or rejoining with new topics): the running batch commits as it ends. */
  let leaving = false;
  /** The running batches' handovers (handleBatchByKey), aborted when this consumer leaves the group. */
  const handovers = new Set<AbortController>();
  const handOver = (why: string) => handovers.forEach((h) => h.abort(new HandedOver(why)));
  /** Per topic|partition, the offset after the last record handled: what a commit should say. */
  const lastResolved = new Map<string, string>();
  const resolve = (p: EachBatchPayload, offset: string) => {
    p.resolveOffset(offset);
    lastResolved.set(`${p.batch.topic}|${p.batch.partition}`, String(BigInt(offset) + 1n));
  };
  /** The offset after `offset` becomes committable (the commit timer sends it), the fetch position having moved past it before. */
  const committable = (p: EachBatchPayload, offset: string) =>
    resolved.resolve({ topic: p.batch.topic, partition: p.batch.partition, offset: String(BigInt(offset) + 1n) });
  /**
   * Per topic|partition, the last of its batches' settlements (handleBatchByKey) and detached
   * records: each makes its offsets committable only after those before it did, so a commit never
   * passes a record whose queued work has not landed.
   */
  const settlingTail = new Map<string, Promise<void>>();
  /** Settlements still running: a rejoin or a leave waits for them, as for a running batch. */
  const settling = new Set<Promise<void>>();
  function inTurn(p: EachBatchPayload, work: (before: Promise<void>) => Promise<void>): Promise<void> {
    const tp = `${p.batch.topic}|${p.batch.partition}`;
    // A heartbeat refused during a re-run's backoff (a rebalance) ends it: its record stays uncommitted.
    const run = work(settlingTail.get(tp) ?? Promise.resolve()).catch((e: unknown) => deps.logger.debug({ tp, err: describeError(e) }, 'settling a batch stopped; its remaining records are read again by the partition\'s owner'));
    settlingTail.set(tp, run);
    settling.add(run);
    void run.finally(() => {
      settling.delete(run);
      if (settlingTail.get(tp) === run) settlingTail.delete(tp);
    });
    return run;
  }

  async function deadLetter(record: IncomingRecord, error: unknown, attempts: number): Promise<void> {
    await deps.publish(deadLetterRecord({ dlqTopic, service: opts.service, record, message: record, error, attempts }));
    deps.logger.warn({ topic: record.topic, partition: record.partition, offset: record.offset, error: describeError(error) }, 'record dead-lettered');
    await opts.onDeadLetter?.(record, error);
  }

  /**
   * Handles one record to the end: 'done' (handled or dead-lettered) or 'paused'. With `queued`,
   * work the handler queued is pushed there instead of awaited here.
   */
  async function handleOne(p: EachBatchPayload, message: KafkaMessage, canPause: boolean, queued?: Promise<unknown>[], handover: AbortSignal = NEVER): Promise<Outcome> {
    const record = toRecord(p.batch.topic, p.batch.partition, message);
    for (let attempts = 1; ; attempts++) {
      try {
        const handled = await opts.handler(record, { handover });
        if (handled && queued) {
          handled.settled.catch(() => undefined); // awaited (and acted on) by the caller
          queued.push(handled.settled);
        } else if (handled) await handled.settled;
        return 'done';
      } catch (e) {
        // Left to the partition's next owner: not done, not failed.
        if (e instanceof HandedOver) {
          deps.logger.info({ topic: record.topic, partition: record.partition, offset: record.offset, reason: e.message }, 'record handed over to the partition\'s next owner');
          return 'stopped';
        }
        let verdict = classify(e);
        if (verdict.action === 'retry' && attempts >= maxAttempts) verdict = { action: 'dead_letter' };
        if (verdict.action === 'pause' && !canPause) verdict = attempts >= maxAttempts ? { action: 'dead_letter' } : { action: 'retry' };
        if (verdict.action === 'dead_letter') {
          await deadLetter(record, e, attempts);
          return 'done';
        }
        if (verdict.action === 'pause') {
          // Leave the offset unresolved: the record is fetched again once the partition resumes.
          pausePartition(p, verdict.ms);
          return 'paused';
        }
        await sleep(backoffDelay(attempts, backoff));
        await p.heartbeat();
        if (!p.isRunning() || stopping) return 'stopped';
      }
    }
  }

  /** Per topic|partition, when a paused partition resumes: a second pause only moves it later. */
  const pausedUntil = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  function pausePartition(p: EachBatchPayload, ms: number): void {
    const tp = `${p.batch.topic}|${p.batch.partition}`;
    const at = Date.now() + ms;
    const current = pausedUntil.get(tp);
    if (current && current.at >= at) return;
    if (current) clearTimeout(current.timer);
    const resume = p.pause();
    const timer = setTimeout(() => {
      pausedUntil.delete(tp);
      resume();
    }, ms);
    timer.unref();
    pausedUntil.set(tp, { at, timer });
  }

  /** Records detached from their batch (opts.detach), still running: a rejoin or a leave waits for them. */
  const detached = new Set<Promise<void>>();

  /** Tells the detached records to stop at a safe point (their handover aborts) and waits until they have. */
  async function settleDetached(why: string): Promise<void> {
    if (detached.size > 0) {
      deps.logger.info({ group: opts.groupId, running: detached.size, reason: why }, 'waiting for long-running records to end before the consumer rejoins or leaves the group');
      handOver(why);
      await Promise.allSettled([...detached]);
    }
    // What ended batches queued (their produce requests), landed or re-run: the next owner reads it.
    while (settling.size > 0) await Promise.allSettled([...settling]);
  }

  /**
   * A record still running when its batch should end: its partition is paused (nothing after it
   * starts), and it goes on outside the batch. When it is done and what it queued landed, the
   * partition resumes from the record after it (else from it again); the answer says whether it
   * landed, for the batch's settlement to make its offset committable in turn.
   */
  function detach(p: EachBatchPayload, message: KafkaMessage, running: Promise<Outcome>, queued: Promise<unknown>[], handover: AbortController): Promise<boolean> {
    const resume = p.pause();
    deps.logger.debug({ topic: p.batch.topic, partition: p.batch.partition, offset: message.offset }, 'record still running; its partition is paused while the batch ends');
    const run = (async () => {
      const result = await running.catch((e: unknown) => (deps.logger.warn({ topic: p.batch.topic, partition: p.batch.partition, offset: message.offset, err: describeError(e) }, 'detached record failed; it is read again'), 'stopped' as const));
      const landed = result === 'done' && (await Promise.allSettled(queued)).every((r) => r.status === 'fulfilled');
      if (landed) p.resolveOffset(message.offset);
      // Deferred while detached: the pause's own timer resumes the partition when its time comes.
      if (result !== 'paused') resume();
      return landed;
    })();
    const tracked = run.then(() => undefined);
    detached.add(tracked);
    void tracked.finally(() => {
      detached.delete(tracked);
      handovers.delete(handover);
    });
    return run;
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
   * A record whose handler defers (Deferred) pauses the partition: no further record of the
   * batch starts, the batch ends as soon as the running ones do (the consumer's other partitions
   * are fetched again meanwhile), and the partition is fetched again from that record once the
   * pause is over (records of other keys after it that finished are read again: handlers
   * recognise them).
   */
  async function handleBatchByKey(p: EachBatchPayload): Promise<void> {
    const messages = p.batch.messages;
    const done = new Array<boolean>(messages.length).fill(false);
    const queued = messages.map((): Promise<unknown>[] => []);
    const chains = new Map<string, Promise<void>>();
    let paused = false;
    let detachedOne = false;
    const detachedRuns: [number, Promise<boolean>][] = [];
    const detachAfter = opts.detach?.topics(p.batch.topic) ? opts.detach.afterMs : undefined;
    // A rebalance under way (the heartbeat says so) or this consumer leaving: the running handlers
    // are told (they may stop at a safe point) and no further record starts, so the batch ends and
    // the member rejoins in time, rather than being dropped while it still works on the partition.
    const handover = new AbortController();
    handovers.add(handover);
    if (stopping || leaving) handover.abort(new HandedOver('the consumer is leaving the group'));
    const heartbeat = setInterval(() => void p.heartbeat().catch((e: unknown) => {
      if (REBALANCING.has(String((e as { type?: unknown }).type))) handover.abort(new HandedOver('the group is rebalancing'));
    }), 1000);
    try {
      messages.forEach((message, i) => {
        const raw = message.key?.toString('latin1') ?? '';
        const key = opts.orderKey ? opts.orderKey(p.batch.topic, raw) : raw;
        const chain = (chains.get(key) ?? Promise.resolve()).then(async () => {
          if (paused || !p.isRunning() || p.isStale() || stopping || handover.signal.aborted) return;
          const running = handleOne(p, message, true, queued[i], handover.signal);
          const result = detachAfter === undefined ? await running : await outlast(running, detachAfter);
          if (result === 'running') {
            paused = detachedOne = true;
            return void detachedRuns.push([i, detach(p, message, running, queued[i]!, handover)]);
          }
          if (result === 'done') done[i] = true;
          else if (result === 'paused') paused = true;
        });
        chains.set(key, chain);
      });
      await Promise.all(chains.values());
    } finally {
      clearInterval(heartbeat);
      // A detached record keeps its handover until it ends (detach).
      if (!detachedOne) handovers.delete(handover);
    }
    // The next fetch reads the partition from the first record not handled; the batch ends here,
    // without waiting for what its records queued (their produce requests): kafkajs fetches again
    // only once every batch of its last fetch has ended, and the next commands need not wait for
    // this batch's acknowledgements. Their offsets become committable once that work landed.
    const firstOpen = done.indexOf(false);
    const handled = firstOpen === -1 ? messages.length : firstOpen;
    if (handled > 0) p.resolveOffset(messages[handled - 1]!.offset);
    if (handled === 0 && detachedRuns.length === 0) return;
    /**
     * From `from` on, the records done whose queued work landed, a record whose work failed run
     * again (awaited this time: its handler sees what it queued and publishes that again, never
     * deciding twice): the index of the first record not done.
     */
    const land = async (from: number): Promise<number> => {
      let i = from;
      for (; i < messages.length && done[i]; i++) {
        if ((await Promise.allSettled(queued[i]!)).every((r) => r.status === 'fulfilled')) continue;
        done[i] = !(!p.isRunning() || p.isStale() || stopping) && (await handleOne(p, messages[i]!, false)) === 'done';
        if (!done[i]) break;
      }
      return i;
    };
    const settled = inTurn(p, async (before) => {
      let open = await land(0);
      await before;
      if (open > 0) committable(p, messages[open - 1]!.offset);
      // A detached record (one at most per order key) is next in line once it lands.
      for (const [i, run] of detachedRuns.sort(([a], [b]) => a - b)) {
        done[i] = await run;
        if (i !== open || !done[i]) break;
        open = await land(i);
        committable(p, messages[open - 1]!.offset);
      }
    });
    // Leaving: kafkajs leaves the group right after this batch; its offsets are committed first.
    if (stopping || leaving) await settled;
  }

  // Offsets are committed in the background, not by kafkajs after every batch: its auto-commit
  // awaits an OffsetCommit between every fetch, and Kafka 4's group coordinator answers that in
  // 7-25 ms (it batches its appends), which every record then waits for. A record is done (and its
  // offset resolved) only after what it queued was acknowledged, so committing later can only
  // redeliver finished records, which handlers recognise; it never skips one.
  const resolved = new PendingOffsets();
  let committing: Promise<void> = Promise.resolve();
  /**
   * Commits what was resolved so far, through `member` (the consumer in the group) or `send`;
   * what fails is tried again with the next commit.
   */
  const commit = (member: Consumer | undefined, send: (offsets: TopicPartitionOffset[]) => Promise<unknown> = (o) => member!.commitOffsets(o)) =>
    (committing = committing.then(async () => {
      if (!member) return;
      const offsets = resolved.take();
      if (offsets.length === 0) return;
      await send(offsets).catch((e: unknown) => {
        resolved.failed(offsets);
        deps.logger.debug({ err: e }, 'offset commit failed; tried again with the next one');
      });
    }));

  /** A consumer subscribed to every subscription as it stands now, running. */
  async function start(): Promise<Consumer> {
    const member = newConsumer();
    // A new member pauses nothing yet: a record deferred by the last one is fetched and deferred again.
    for (const { timer } of pausedUntil.values()) clearTimeout(timer);
    pausedUntil.clear();
    // A crash kafkajs does not restart from (e.g. "Failed to find group coordinator" after a broker
    // restart) would leave the service running with no consumer: start a new one instead.
    member.on(member.events.CRASH, ({ payload }) => {
      if (payload.restart || stopping) return;
      deps.logger.warn({ group: opts.groupId, err: describeError(payload.error) }, 'consumer stopped by an error kafkajs does not retry; starting a new one');
      watching = watching.then(async () => {
        if (consumer !== member || stopping) return;
        consumer = undefined;
        await settleDetached('the consumer is restarting');
        await member.disconnect().catch(() => undefined);
        for (let attempt = 1; !stopping && !consumer; attempt++) {
          await sleep(Math.min(10_000, 500 * attempt));
          if (!stopping) consumer = await start().catch((e: unknown) => (deps.logger.warn({ group: opts.groupId, err: describeError(e) }, 'consumer not restarted yet; retrying'), undefined));
        }
      });
    });
    // A rejoin may have moved partitions elsewhere: their offsets are their new owner's to commit.
    // And partitions may have come from elsewhere: state is brought up to date before their first batch.
    let caughtUp: Promise<void> | undefined;
    let ready = !opts.onAssigned;
    member.on(member.events.GROUP_JOIN, ({ payload }) => {
      resolved.assigned(payload.memberAssignment);
      caughtUp = undefined;
      ready = !opts.onAssigned;
    });
    /** Waits for `onAssigned` of the current assignment (tried again while it fails); false if the consumer stops meanwhile. */
    const assignedReady = async (p: EachBatchPayload): Promise<boolean> => {
      if (ready || !opts.onAssigned) return true;
      const heartbeat = setInterval(() => void p.heartbeat().catch(() => undefined), 1000);
      try {
        for (let attempt = 1; ; attempt++) {
          try {
            const joined = (caughtUp ??= opts.onAssigned());
            await joined;
            // Unless a rejoin came meanwhile (it asks again), batches go straight on from now.
            if (caughtUp === joined) ready = true;
            return true;
          } catch (e) {
            caughtUp = undefined;
            deps.logger.warn({ group: opts.groupId, err: describeError(e) }, 'bringing state up to date for new partitions failed; trying again');
            if (!p.isRunning() || p.isStale() || stopping) return false;
            await sleep(backoffDelay(attempt, backoff));
          }
        }
      } finally {
        clearInterval(heartbeat);
      }
    };
    try {
      await member.connect();
      for (const s of subscriptions) await member.subscribe({ topic: s, fromBeginning: opts.fromBeginning ?? false });
      await member.run({
        eachBatchAutoResolve: false,
        autoCommit: false,
        partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently ?? 1,
        // kafkajs patch (patches/): a rebalance waits for detached records as for a running batch.
        beforeRejoin: () => settleDetached('the group is rebalancing'),
        eachBatch: async (p) => {
          if (!(await assignedReady(p))) return;
          await handleBatch(p);
          // What handleBatch resolved: the next offset to read, committed by the timer (records
          // run by key make theirs committable themselves, once what they queued landed).
          const next = lastResolved.get(`${p.batch.topic}|${p.batch.partition}`);
          if (next !== undefined && !opts.concurrentKeys) resolved.resolve({ topic: p.batch.topic, partition: p.batch.partition, offset: next });
          // Leaving: kafkajs leaves the group right after this batch, so commit now, while still a
          // member, through the batch's own handle: once disconnect() began, Consumer.commitOffsets
          // returns without sending anything ("consumer not running"), and the offsets were lost.
          if (stopping || leaving) await commit(member, (o) => p.commitOffsetsIfNecessary(byTopic(o)));
        },
      });
    } catch (e) {
      await member.disconnect().catch(() => undefined);
      throw e;
    }
    return member;
  }

  let known = patterns.length ? await matching() : new Set<string>();
  let consumer: Consumer | undefined = await start();
  const committer = setInterval(() => void commit(consumer), opts.commitIntervalMs ?? 500);
  committer.unref();

  /** Leaves the group cleanly: earlier batches' offsets now, the running batch's as it ends. */
  async function leave(): Promise<void> {
    const member = consumer;
    consumer = undefined;
    leaving = true;
    handOver('the consumer is leaving the group');
    try {
      await settleDetached('the consumer is leaving the group');
      await commit(member);
      await member?.disconnect();
    } finally {
      leaving = false;
    }
  }

  // kafkajs resolves a pattern once, when it subscribes: a topic created later (a new workspace's
  // command topic) would never be read. The topic list is watched instead, and when a new topic
  // matches, the consumer leaves the group cleanly (in-flight records finish and commit) and joins
  // again subscribed to it. A new topic's partitions start where `fromBeginning` says.
  const rescan = async () => {
    if (stopping) return;
    const now = await matching();
    const added = [...now].filter((t) => !known.has(t));
    if (consumer && added.length === 0) return;
    if (consumer) {
      deps.logger.info({ group: opts.groupId, topics: added }, 'new topics match the subscription; rejoining the group');
      await leave();
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
      clearInterval(committer);
      // Commit what earlier batches resolved; the running batch commits its own as it ends
      // (kafkajs waits for it before leaving the group).
      await leave();
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Outcome = 'done' | 'paused' | 'stopped';
/** `running`'s outcome, or 'running' when it has none after `ms`. */
async function outlast(running: Promise<Outcome>, ms: number): Promise<Outcome | 'running'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'running'>((r) => (timer = setTimeout(() => r('running'), ms)));
  try {
    return await Promise.race([running, late]);
  } finally {
    clearTimeout(timer);
  }
}
const NEVER = new AbortController().signal;
/** Heartbeat answers meaning the member must rejoin: its partitions may go to another member. */
const REBALANCING = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID']);

/** Offsets as kafkajs's group commit takes them: per topic, its partitions. */
function byTopic(offsets: TopicPartitionOffset[]): { topics: { topic: string; partitions: { partition: number; offset: string }[] }[] } {
  const topics = new Map<string, { partition: number; offset: string }[]>();
  for (const o of offsets) topics.set(o.topic, [...(topics.get(o.topic) ?? []), { partition: o.partition, offset: o.offset }]);
  return { topics: [...topics].map(([topic, partitions]) => ({ topic, partitions })) };
}

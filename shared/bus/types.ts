/** What the bus moves: raw bytes with a key and string headers. Codecs sit above it. */
export interface OutgoingRecord {
  topic: string;
  key?: string | Buffer | null;
  value: Buffer | string | null;
  headers?: Record<string, string | Buffer>;
}

export interface IncomingRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  /** Header values as UTF-8 text (the last one when a header repeats). */
  headers: Record<string, string>;
  /** The same headers as the bytes that arrived, for copying a record unchanged (dead letters, replays). */
  rawHeaders?: Record<string, Buffer>;
  timestamp: string;
}

export interface RecordAck {
  topic: string;
  partition: number;
  offset: string;
}

export type PublishOutcome = { ok: true; ack: RecordAck } | { ok: false; error: Error };

export interface PublishOptions {
  /** Give up waiting after this long; a record not yet handed to Kafka is then not sent at all. */
  timeoutMs?: number;
  /** Units with the same order key land in publish order, even on a bus with several lanes. */
  orderKey?: string;
}

/** What a subscription does with a record whose handler failed. */
export type FailureAction =
  | { action: 'retry' } // transient: try again in place, with backoff, up to maxAttempts
  | { action: 'dead_letter' } // will never succeed: park it with the reason, move on
  | { action: 'pause'; ms: number }; // e.g. a rate limit: stop this partition only, re-read it later

export interface Handled {
  /** Work the handler queued (e.g. a produce) that must succeed before the record's offset is committed. */
  settled: Promise<unknown>;
}

/** A consumer group: every record handled once per group, offsets committed only after handling. */
export interface SubscribeOptions {
  /** Names dead letters `ionflux.dlq.<service>` and tags their headers. */
  service: string;
  groupId: string;
  /** Topic names or patterns (see topicPattern). */
  subscriptions: (string | RegExp)[];
  fromBeginning?: boolean;
  /**
   * Handles one record. It may return `{ settled }`: with concurrentKeys the runner goes on with
   * the key's next record meanwhile and awaits every `settled` before committing; a rejected one
   * re-runs its record. Otherwise `settled` is awaited in place.
   */
  /**
   * `handover` aborts (with HandedOver) when the group is rebalancing or the consumer is leaving
   * while the record runs (concurrentKeys only): a long handler may stop at a safe point and throw
   * HandedOver, and the record is left, uncommitted, to the partition's next owner.
   */
  handler: (record: IncomingRecord, ctx?: { handover: AbortSignal }) => Promise<void | Handled>;
  /** The failure policy: error -> action (default: defaultClassify in policy.ts). */
  classify?: (e: unknown) => FailureAction;
  maxAttempts?: number;
  backoffMs?: { initial: number; max: number };
  partitionsConsumedConcurrently?: number;
  /** A member that stopped answering gives its partitions up after this long (default 10 s, as the transform's). */
  sessionTimeoutMs?: number;
  /** How long the group waits in a rebalance for a member still running a batch before dropping it (default 60 s, kafkajs's). */
  rebalanceTimeoutMs?: number;
  /** Run records of different keys concurrently within a batch (order is kept per key). */
  concurrentKeys?: boolean;
  /** With concurrentKeys: what keeps records in order, from the record's topic and key (default: the key). */
  orderKey?: (topic: string, key: string) => string;
  /**
   * With concurrentKeys: a record of a topic this accepts, still running after `afterMs`, is
   * detached from its batch. Its partition is paused (no further record of it starts), the batch
   * ends, and the consumer fetches its other partitions again while the record runs on; when it
   * ends, its offset is resolved (if done) and the partition resumes from the next record. Meant
   * for partitions whose records must run in order anyway (one workspace's commands): a long run
   * then holds only its own partition, not the consumer's next fetch. A rebalance or a leave
   * waits, as for a running batch, until detached records have stopped (their handover aborts).
   */
  detach?: { afterMs: number; topics: (topic: string) => boolean };
  /** How often resolved offsets are committed in the background (default 500 ms). */
  commitIntervalMs?: number;
  /** Called after a record is dead-lettered (metrics, failure events). */
  onDeadLetter?: (record: IncomingRecord, error: unknown) => Promise<void> | void;
  /** With patterns among the subscriptions: how often the topic list is checked for new matching topics (default 5000 ms). */
  rescanTopicsMs?: number;
  /**
   * Runs each time this member (re)joins the group, before it handles a record of its new
   * assignment: the place to bring state up to date (e.g. table.catchUp()), so records a previous
   * owner handled but did not commit are recognised. A failure is logged and tried again.
   */
  onAssigned?(): Promise<void>;
}

export interface Subscription {
  /** Finishes in-flight records, commits, leaves the group. */
  stop(): Promise<void>;
}

/** A partition's offsets: `low` the first kept, `high` the high watermark (next offset to be written). */
export interface PartitionOffsets {
  partition: number;
  low: string;
  high: string;
}

/** Records of one partition read in one go; `next` is the offset after them, transaction markers included. */
export interface ReadBatch {
  topic: string;
  partition: number;
  records: IncomingRecord[];
  next: string;
}

/** A read outside any consumer group: committed records only, nothing committed back. */
export interface ReadOptions {
  /** A topic, or a pattern (topics created later that match are read from their beginning). */
  topic: string | RegExp;
  /**
   * Where each partition starts: its beginning, its current end, or the given next offsets
   * (partitions not listed start at their beginning).
   */
  from: 'beginning' | 'end' | ReadonlyMap<number, string>;
  /** Called per batch, in offset order per partition; the next batch of that partition waits for it. */
  onBatch: (batch: ReadBatch) => void | Promise<void>;
  /**
   * Fetches wait for `minBytes` (default 1: answered as soon as one record is there) or
   * `maxWaitMs` (default 250). More bytes and a longer wait mean fewer, bigger fetches, for
   * readers whose records are seldom waited for (a table whose only writer applies its own
   * writes locally).
   */
  fetch?: FetchOptions;
}

/** How a consumer's fetches wait: for this many bytes or this long, whichever comes first (each user states its defaults). */
export interface FetchOptions {
  minBytes?: number;
  maxWaitMs?: number;
}

export interface Reader {
  /** Resolves once every partition that existed at start was read to its high watermark as of start. */
  caughtUp: Promise<void>;
  close(): Promise<void>;
}

/** A record and, when it must not follow its key's hash, the partition it goes to. */
export interface PlacedRecord {
  record: OutgoingRecord;
  partition?: number;
}

/**
 * The writer of one owned partition: it commits only while its holder owns the partition, since
 * the next owner fences it when taking the partition over. Each `send` is one transaction.
 */
export interface FencedWriter {
  /** Throws HubError `ownership_lost` once another member has taken the partition. */
  send(records: PlacedRecord[]): Promise<void>;
  readonly dead: boolean;
}

/** A partition of a keyed topic this member owns: the latest value per key, and its fenced writer. */
export interface OwnedPartition<V> {
  partition: number;
  writer: FencedWriter;
  /** Kept current while owned (a value older than one already applied is never applied). */
  records: Map<string, V>;
}

/**
 * Exclusive ownership of a keyed topic's partitions among the members of a group: work for a key
 * is done by the owner of its partition only. `onAcquired` runs once the previous holder is fenced
 * and the partition was read to its end; `onReleased` as soon as a rebalance may move it.
 */
export interface OwnershipOptions<V> {
  topic: string;
  groupId: string;
  /** Each partition's writer is the transactional id `<prefix>-<partition>`. */
  transactionalPrefix: string;
  parse(value: Buffer): V;
  onAcquired(p: OwnedPartition<V>): Promise<void> | void;
  onReleased(partition: number): void;
  /** A key of an acquired partition changed (undefined: deleted). */
  onChange(partition: number, key: string, value: V | undefined): void;
}

export interface Ownership {
  stop(): Promise<void>;
}

/** What a batch of consumed records becomes: records to write, and what to do once they are committed. */
export interface Transformed {
  records: OutgoingRecord[];
  /** Runs after the transaction holding `records` and the batch's offsets committed (e.g. table.applyLocal). */
  committed?: () => void;
}

/**
 * Consume-transform-produce, exactly once: a consumer group on `topic` where each batch of a
 * partition becomes `transform`'s records, written in one Kafka transaction together with the
 * batch's consumed offsets. Each partition has its own transactional id, `<prefix>-<partition>`:
 * taking a partition fences whoever held it before, so two members never both commit one
 * partition's work, and after a crash the next owner goes on from the last committed batch.
 */
export interface TransformOptions {
  groupId: string;
  topic: string;
  transactionalPrefix: string;
  /**
   * Runs when this member takes a partition, after the previous holder was fenced and before
   * the partition's first batch: the place to bring state up to date (e.g. table.catchUp()).
   */
  onAssigned?(partition: number): Promise<void>;
  /** Must not change anything outside its result: on a failed commit the same batch comes again. */
  transform(records: IncomingRecord[], partition: number): Promise<Transformed>;
  /** Partitions worked on at once (default: all). */
  partitionsConsumedConcurrently?: number;
  sessionTimeoutMs?: number;
  /**
   * Fetches wait for `minBytes` (default 1) or `maxWaitMs` (default 100), whichever comes first:
   * under load, bigger batches and so fewer transactions (each writes a commit marker on every
   * partition it touched); when idle, a record waits at most `maxWaitMs` more.
   */
  fetch?: FetchOptions;
}

/**
 * The one bus every service, the CLI and the tests type against. KafkaBus (shared/bus/kafka/) is
 * the real one; MemoryBus (shared/bus/memory.ts) serves unit tests only.
 */
export interface Bus {
  publish(record: OutgoingRecord, opts?: PublishOptions): Promise<RecordAck>;
  /** Records that land together or not at all (one transaction when the bus is transactional). */
  publishAtomic(records: OutgoingRecord[], opts?: PublishOptions): Promise<RecordAck[]>;
  /** Independent records, each with its own outcome. */
  publishBatch(records: OutgoingRecord[], opts?: PublishOptions): Promise<PublishOutcome[]>;
  subscribe(opts: SubscribeOptions): Promise<Subscription>;
  read(opts: ReadOptions): Promise<Reader>;
  /**
   * Every committed record of `topic` up to its high watermark at the call (waiting for commit
   * markers still on their way), in partition then offset order; [] when the topic does not exist.
   */
  readToEnd(topic: string, opts?: { timeoutMs?: number }): Promise<IncomingRecord[]>;
  /** Low and high watermarks per partition; [] when the topic does not exist. */
  offsets(topic: string): Promise<PartitionOffsets[]>;
  listTopics(): Promise<string[]>;
  /** Creates missing topics with the hub's partitions, replication and per-topic configs. */
  ensureTopics(topics: Iterable<string>): Promise<void>;
  /** Joins `groupId` to consume `topic` exactly once into other topics (see TransformOptions). */
  transform(opts: TransformOptions): Promise<Subscription>;
  /** Joins `groupId` to own some of `topic`'s partitions (see OwnershipOptions). */
  own<V>(opts: OwnershipOptions<V>): Promise<Ownership>;
  /** True when the broker answers (readiness). */
  healthy(): Promise<boolean>;
  /** The Kafka cluster's id: a table's disk store records it, and is rebuilt when used against another cluster. */
  clusterId?(): Promise<string>;
  close(): Promise<void>;
}

import { join } from 'node:path';
import { withDeadline } from '../../deadline.ts';
import { HubError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Bus, OutgoingRecord, PartitionOffsets, ReadBatch, Reader, ReadOptions } from '../types.ts';
import { LmdbStore } from './lmdb-store.ts';
import { MemoryStore, type Change, type ExpiryOf, type TableStore } from './store.ts';

/** What a table needs from a service's runtime (`...rt`); without `stateDir` it lives in memory. */
export interface TableHost {
  bus: Bus;
  logger: Logger;
  stateDir?: string | undefined;
}

export interface TableOptions<V> extends TableHost {
  topic: string;
  /** A record's value (bytes as on the topic) and its key back to a value; throws on what it cannot read. */
  parse: (value: Buffer, key: string) => V;
  /** How a value is written (default its JSON); `parse` must read what it writes. */
  serialize?: (value: V, key: string) => Buffer;
  /** How the table's reader fetches; default: as soon as a record is there. */
  fetch?: ReadOptions['fetch'];
  /** Called for every change read from the topic (including this process's own writes). */
  onChange?: (key: string, value: V | undefined) => void;
  /**
   * Values that matter only for a while (e.g. dedupe markers): older ones are not kept, and are
   * dropped every `sweepMs` (default a minute); the topic's retention drops them on the broker.
   */
  expire?: { afterMs: number; at: (value: V) => number; sweepMs?: number };
  /**
   * With a directory, the state lives on disk (LMDB, in `<stateDir>/<topic>/`) and a restart
   * reads only what the topic got after the store's checkpoint; without one, in the heap.
   */
  stateDir?: string | undefined;
}

// A write applied locally is served from memory until the topic delivers it back (same bytes)
// or delivers a record of that key produced after it (another writer's newer value), or for
// at most this long. Records produced before it (e.g. the command's `started` still on its way
// when `done` is applied) do not replace it. Only what the topic holds reaches the store, so a
// write whose transaction never committed cannot outlive a restart.
const LOCAL_MAX_MS = 60_000;

// A disk store takes what the topic delivers in commits of many batches, not one LMDB commit per
// batch read (each commit rewrites branch pages, the free list and the meta page): changes wait
// in `pending`, served from there, for at most this long or until there are this many of them.
// Then they are handed to the store's write thread (`writing`, still served from here until
// committed; one commit in flight at a time): writing 4,500 changes into a store of 270,000 keys
// held the event loop 64 ms when committed on it, 12 ms when handed over.
// A crash loses only uncommitted changes, whose checkpoint was not written either: they are read again.
const FLUSH_MS = 200;
const FLUSH_MAX = 20_000;
// While a commit is in flight, at most this many changes wait in `pending` (see `behind`).
const BEHIND_MAX = 100_000;

/**
 * How a table reads its topic back when its writers are the owners of the partitions whose work it
 * records (the ingester's processor, a command worker): an owner applies its own writes locally,
 * and a new owner reads to the end before working (`catchUp`), so what comes back is seldom waited
 * for. Bigger, fewer fetches instead of one per batch written. The ingester's processor, in a
 * back-to-back pair of make bench-ingest runs: the broker's CPU per 1,000 deliveries from 104 to
 * 75 ms. A command worker, make bench-commands with the hub alone, runs of the two versions taken
 * in turn: 8,095 and 8,086 commands/s before, 9,432 and 9,938 after (runs vary widely). A
 * partition's new owner starts at most `maxWaitMs` later.
 */
export const OWNERS_TABLE_FETCH = { minBytes: 1 << 20, maxWaitMs: 500 };

/**
 * A compacted topic as a key-value table: every instance sees every write, the state survives
 * restarts of everything, and `start` resolves once the topic was read up to its high watermark
 * as of start (read_committed). `get` is synchronous, from the heap or from LMDB.
 */
export class KafkaTable<V> {
  private store: TableStore<V> = new MemoryStore<V>();
  private readonly local = new Map<string, { value: V | undefined; bytes: Buffer | null; at: number }>();
  private reader: Reader | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly expiryOf: ExpiryOf<V> | undefined;
  /** Per partition, the offset after the last batch applied (transaction markers included). */
  private readonly positions = new Map<number, bigint>();
  /** Changes read from the topic, applied here but not yet written to a disk store, with their checkpoints. */
  private pending = new Map<string, Change<V>>();
  private pendingCheckpoints = new Map<number, string>();
  /** Changes handed to the store's write thread and not yet committed (one commit in flight at a time). */
  private writing: Map<string, Change<V>> | undefined;
  private write: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  ready: Promise<void> = Promise.resolve();
  /** How the last start went: records read to catch up, from where, and why the store was rebuilt (if it was). */
  restored: { records: number; from: 'beginning' | 'checkpoint'; reset?: string; ms: number } = { records: 0, from: 'beginning', ms: 0 };

  constructor(private readonly opts: TableOptions<V>) {
    const e = opts.expire;
    this.expiryOf = e && ((v: V) => e.at(v) + e.afterMs);
  }

  async start(timeoutMs = 30_000): Promise<void> {
    const { bus, topic, logger } = this.opts;
    const began = Date.now();
    await bus.ensureTopics([topic]);
    let reset: string | undefined;
    if (this.opts.stateDir) ({ store: this.store, reset } = LmdbStore.open<V>(join(this.opts.stateDir, topic), topic, this.opts.parse, { expiryOf: this.expiryOf, cluster: await bus.clusterId?.() }));
    else this.store = new MemoryStore<V>(this.expiryOf);
    const checkpoint = new Map([...this.store.checkpoint()].map(([p, cp]) => [p, parseCheckpoint(cp)] as const));
    const ends = await bus.offsets(topic);
    const stale = staleCheckpoint(new Map([...checkpoint].map(([p, cp]) => [p, cp.next])), ends);
    if (stale) {
      this.store.clear();
      checkpoint.clear();
      reset = stale;
    }
    if (reset) logger.warn({ topic, reason: reset }, 'table store rebuilt from the topic');
    let read = await this.readFrom(checkpoint, ends, timeoutMs);
    // The record the checkpoint was taken after is another one: the topic was deleted and made
    // again (with as many records or more) while the store was kept. Its values are not this topic's.
    if (this.recreated) {
      reset = this.recreated;
      logger.warn({ topic, reason: reset }, 'table store rebuilt from the topic');
      await this.reader?.close();
      await this.discardAll();
      checkpoint.clear();
      read = await this.readFrom(checkpoint, ends, timeoutMs);
    }
    // A store resumed from its checkpoint may hold values that expired while the service was down.
    if (this.expiryOf) await this.sweep();
    else await this.settle();
    this.restored = { records: read, from: checkpoint.size ? 'checkpoint' : 'beginning', reset, ms: Date.now() - began };
    logger.info({ topic, entries: this.store.size, records_read: read, from: this.restored.from, store: this.opts.stateDir ? 'disk' : 'memory', ms: this.restored.ms }, 'table ready');
    this.sweeper = setInterval(() => this.maintain(), Math.min(this.opts.expire?.sweepMs ?? 60_000, 5_000));
    this.sweeper.unref();
  }

  /**
   * Reads the topic from the checkpoint (each partition from the last record it covers, which is
   * compared with the one the store took: see `recreated`) until caught up; returns how many
   * records it applied.
   */
  private async readFrom(checkpoint: Map<number, Checkpoint>, ends: PartitionOffsets[], timeoutMs: number): Promise<number> {
    const { bus, topic } = this.opts;
    const from = new Map<number, string>();
    this.verifying.clear();
    for (const [p, cp] of checkpoint) {
      this.positions.set(p, BigInt(cp.next));
      const low = BigInt(ends.find((e) => e.partition === p)?.low ?? cp.next);
      if (cp.last && BigInt(cp.last.offset) >= low) {
        this.verifying.set(p, { ...cp.last, next: BigInt(cp.next) });
        from.set(p, cp.last.offset);
      } else from.set(p, cp.next);
    }
    let read = 0;
    this.reader = await bus.read({
      topic,
      from,
      onBatch: (b) => {
        read += this.applyBatch(b);
        return this.behind();
      },
      fetch: this.opts.fetch,
    });
    this.ready = withDeadline(this.reader.caughtUp, timeoutMs, () => new HubError('table_not_ready', `reading ${topic} took over ${timeoutMs} ms`, { retryable: true }));
    await this.ready;
    return read;
  }

  /** Forgets what the store and this instance hold (after a rebuild was found necessary while reading). */
  private async discardAll(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    while (this.write) await this.write;
    this.pending.clear();
    this.pendingCheckpoints.clear();
    this.local.clear();
    this.positions.clear();
    this.lastRecords.clear();
    this.store.clear();
    this.recreated = undefined;
  }

  /**
   * Per partition being resumed, the record its checkpoint was taken after (offset and broker
   * timestamp) and the checkpoint: records before `next` are read only to find that one again.
   */
  private readonly verifying = new Map<number, { offset: string; ts: string; next: bigint }>();
  /** Per partition, the last record read (offset:timestamp), kept with each checkpoint. */
  private readonly lastRecords = new Map<number, { offset: string; ts: string }>();
  /** Set when a resumed partition's record at the checkpoint is another than the store took. */
  private recreated: string | undefined;

  /** Applies one batch read from the topic, with its checkpoint; returns how many records it applied. */
  private applyBatch(b: ReadBatch): number {
    if (this.recreated) return 0;
    let records = b.records;
    const check = this.verifying.get(b.partition);
    if (check) {
      // Only records from `next` on are new here; the one before is the checkpoint's, compared.
      const seen = records.find((r) => r.offset === check.offset);
      if (seen && seen.timestamp !== check.ts) {
        this.recreated = `the record at ${b.partition}:${check.offset} is not the one the checkpoint was taken after (was the topic deleted and made again?)`;
        return 0;
      }
      records = records.filter((r) => BigInt(r.offset) >= check.next);
      if (BigInt(b.next) >= check.next) this.verifying.delete(b.partition);
      // Compacted away (a newer value of its key came later): nothing to compare with.
      else if (records.length === 0 && b.records.length > 0 && !seen) this.verifying.delete(b.partition);
      if (BigInt(b.next) <= check.next) return 0; // its position is the checkpoint's already
    }
    const changes: Change<V>[] = [];
    const now = Date.now();
    for (const r of records) {
      if (!r.key) continue;
      const key = r.key.toString();
      const mine = this.local.get(key);
      if (mine) {
        if (r.value === null ? mine.bytes === null : mine.bytes !== null && r.value.equals(mine.bytes)) {
          // This process's own write coming back: stored as it was applied, not parsed again.
          this.local.delete(key);
          const { value } = mine;
          changes.push(value === undefined || r.value === null || (this.expiryOf && this.expiryOf(value) < now) ? [key, undefined] : [key, value, r.value]);
          continue;
        }
        if (Number(r.timestamp) >= mine.at) this.local.delete(key); // another writer's newer value
      }
      if (r.value === null) {
        changes.push([key, undefined]);
        continue;
      }
      try {
        const value = this.opts.parse(r.value, key);
        changes.push(this.expiryOf && this.expiryOf(value) < now ? [key, undefined] : [key, value, r.value]);
      } catch (e) {
        this.opts.logger.error({ topic: this.opts.topic, key, err: e }, 'unreadable table record skipped');
      }
    }
    const last = records[records.length - 1];
    if (last) this.lastRecords.set(b.partition, { offset: last.offset, ts: last.timestamp });
    if (this.opts.stateDir) {
      for (const c of changes) this.pending.set(c[0], c);
      this.pendingCheckpoints.set(b.partition, formatCheckpoint(b.next, this.lastRecords.get(b.partition)));
      if (this.pending.size >= FLUSH_MAX) this.flushLater();
      else this.flushTimer ??= setTimeout(() => this.flushLater(), FLUSH_MS).unref();
    } else this.store.apply(changes, new Map([[b.partition, b.next]]));
    this.positions.set(b.partition, BigInt(b.next));
    if (this.opts.onChange) for (const [key, value] of changes) this.opts.onChange(key, value);
    return records.length;
  }

  /**
   * What a disk store has not written yet is held in the heap: past BEHIND_MAX changes with a
   * commit in flight, the reader waits for that commit (and hands the rest over) before reading
   * on. Without this, a first start outran the store's write thread and held every record it read
   * (make bench-state, 1M finished commands, cold start, one run each: RSS 1,841 MB and ready in
   * 47.8 s without; 1,331 MB and 51.9 s with 100,000; 901 MB and 78.8 s with 40,000; 646 MB and
   * 85.7 s with 20,000: smaller commits of random keys cost the write thread more per change).
   */
  private behind(): Promise<void> | undefined {
    const write = this.write;
    if (!this.opts.stateDir || this.pending.size < BEHIND_MAX || !write) return undefined;
    return write.then(() => this.flushLater());
  }

  /**
   * Resolves once every write committed to the topic before the call was applied here (e.g. after
   * fencing a partition's previous owner, so what it committed is known before working on).
   */
  async catchUp(timeoutMs = 30_000): Promise<void> {
    const ends = await this.opts.bus.offsets(this.opts.topic);
    const deadline = Date.now() + timeoutMs;
    const behind = () => ends.some((e) => BigInt(e.high) > BigInt(e.low) && (this.positions.get(e.partition) ?? -1n) < BigInt(e.high));
    while (behind()) {
      if (Date.now() > deadline) throw new HubError('table_not_ready', `${this.opts.topic} was not read to its end within ${timeoutMs} ms`, { retryable: true });
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private round: Promise<void> | undefined;
  private nextRound: Promise<void> | undefined;

  /**
   * Resolves once every write committed to the topic before the call was applied here, like
   * `catchUp`, but callers share the work: one read of the end offsets at a time, and whoever asks
   * while one is under way waits for the next (a read that began before the call could miss a write
   * made just before it).
   */
  fresh(timeoutMs = 10_000): Promise<void> {
    if (!this.round) return this.startRound(timeoutMs);
    return (this.nextRound ??= this.round.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      this.nextRound = undefined;
      return this.startRound(timeoutMs);
    }));
  }

  private startRound(timeoutMs: number): Promise<void> {
    const round: Promise<void> = this.catchUp(timeoutMs).finally(() => {
      if (this.round === round) this.round = undefined;
    });
    this.round = round;
    return round;
  }

  /**
   * Hands what is pending to the store's write thread, unless a commit is in flight (then it
   * tries again shortly). A store that refuses the write gets the changes back, under any newer
   * ones, with their checkpoints: no later checkpoint is committed before them.
   */
  private flushLater(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pendingCheckpoints.size === 0) return;
    if (this.write) {
      this.flushTimer = setTimeout(() => this.flushLater(), FLUSH_MS).unref();
      return;
    }
    const [changes, checkpoints] = [this.pending, this.pendingCheckpoints];
    [this.pending, this.pendingCheckpoints] = [new Map(), new Map()];
    this.writing = changes;
    this.write = this.store.applyAsync([...changes.values()], checkpoints).then(
      () => {
        this.writing = this.write = undefined;
      },
      (e: unknown) => {
        this.opts.logger.error({ topic: this.opts.topic, err: e }, 'table store write failed; kept in memory, tried again');
        for (const [k, v] of changes) if (!this.pending.has(k)) this.pending.set(k, v);
        for (const [p, next] of checkpoints) if (!this.pendingCheckpoints.has(p)) this.pendingCheckpoints.set(p, next);
        this.writing = this.write = undefined;
        this.flushTimer ??= setTimeout(() => this.flushLater(), 1000).unref();
      },
    );
  }

  /** Writes what is pending, with its checkpoints, in one synchronous commit; only while no commit is in flight. */
  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.write) throw new Error('table store: synchronous flush while a commit is in flight');
    if (this.pendingCheckpoints.size === 0) return;
    this.store.apply([...this.pending.values()], new Map(this.pendingCheckpoints));
    this.pending.clear();
    this.pendingCheckpoints.clear();
  }

  /**
   * Once nothing is in flight, writes what is pending and runs `then`, in one synchronous step
   * (a synchronous LMDB commit must not overtake queued asynchronous ones).
   */
  private async settle<T>(then: () => T = () => undefined as T): Promise<T> {
    while (this.write) await this.write;
    this.flush();
    return then();
  }

  private maintain(now = Date.now()): void {
    for (const [k, e] of this.local) if (now - e.at > LOCAL_MAX_MS) this.local.delete(k);
    if (this.expiryOf && now - this.lastSweep >= (this.opts.expire?.sweepMs ?? 60_000)) {
      this.lastSweep = now;
      void this.sweep(now).catch((e: unknown) => this.opts.logger.error({ topic: this.opts.topic, err: e }, 'table sweep failed; tried again later'));
    }
  }

  private lastSweep = Date.now();

  /** Drops expired values (once everything read so far is stored); returns how many. */
  sweep(now = Date.now()): Promise<number> {
    return this.settle(() => {
      this.lastSweep = now;
      return this.store.sweep(now);
    });
  }

  /** Entries, expired ones not yet swept included (what `entries()` returns). */
  get size(): number {
    return this.entries().length;
  }

  /** The value of `key`; an expired one counts as absent even before a sweep drops it. */
  get(key: string): V | undefined {
    const l = this.local.get(key);
    const layered = l ? undefined : (this.pending.get(key) ?? this.writing?.get(key));
    const v = l ? l.value : layered ? layered[1] : this.store.get(key);
    return v !== undefined && this.expiryOf && this.expiryOf(v) < Date.now() ? undefined : v;
  }

  entries(): [string, V][] {
    const all = new Map<string, V | undefined>(this.store.entries());
    for (const layer of [this.writing, this.pending]) for (const [k, [, v]] of layer ?? []) all.set(k, v);
    for (const [k, e] of this.local) all.set(k, e.value);
    const out: [string, V][] = [];
    for (const [k, v] of all) if (v !== undefined) out.push([k, v]);
    return out;
  }

  /**
   * The record that sets `key`; publish it alone or atomically with others. Its JSON is kept (by
   * value object) for `applyLocal` of the same value: a value is not changed once recorded.
   */
  record(key: string, value: V | undefined): OutgoingRecord {
    if (value === undefined) return { topic: this.opts.topic, key, value: null };
    const bytes = this.bytesOf(key, value);
    if (typeof value === 'object' && value !== null) this.encoded.set(value, bytes);
    return { topic: this.opts.topic, key, value: bytes };
  }

  private bytesOf(key: string, value: V): Buffer {
    return this.opts.serialize ? this.opts.serialize(value, key) : jsonBytes(value);
  }

  /** The bytes `record` made of a value, so applying that value locally does not encode it again. */
  private readonly encoded = new WeakMap<object, Buffer>();

  /** Writes and applies locally at once, so the writer reads its own write. */
  async set(key: string, value: V): Promise<void> {
    await this.opts.bus.publish(this.record(key, value));
    this.applyLocal(key, value);
  }

  async delete(key: string): Promise<void> {
    await this.opts.bus.publish(this.record(key, undefined));
    this.applyLocal(key, undefined);
  }

  /** Applies a write that was published by the caller (e.g. inside a transaction with other records). */
  applyLocal(key: string, value: V | undefined): void {
    const bytes = value === undefined ? null : ((typeof value === 'object' && value !== null && this.encoded.get(value)) || this.bytesOf(key, value));
    this.local.set(key, { value, bytes, at: Date.now() });
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await this.reader?.close();
    await this.settle().catch((e: unknown) => this.opts.logger.error({ topic: this.opts.topic, err: e }, 'table store not written at close; read again from the topic at start'));
    await this.store.close();
  }
}

/**
 * A partition's checkpoint as a store keeps it: the next offset to read, and the last record read
 * before it (`<next>@<offset>:<timestamp>`), by which a resumed read recognises its topic. A
 * checkpoint written before it carried that, or of a partition with no record yet, is the offset alone.
 */
type Checkpoint = { next: string; last?: { offset: string; ts: string } };

function formatCheckpoint(next: string, last: { offset: string; ts: string } | undefined): string {
  return last ? `${next}@${last.offset}:${last.ts}` : next;
}

function parseCheckpoint(s: string): Checkpoint {
  const m = /^(\d+)@(\d+):(-?\d+)$/.exec(s);
  return m ? { next: m[1]!, last: { offset: m[2]!, ts: m[3]! } } : { next: s };
}

/** Why a checkpoint cannot be resumed from (the topic was trimmed past it, or recreated), if so. */
function staleCheckpoint(checkpoint: Map<number, string>, ends: PartitionOffsets[]): string | undefined {
  for (const [partition, next] of checkpoint) {
    const end = ends.find((e) => e.partition === partition);
    if (!end) return `partition ${partition} no longer exists`;
    if (BigInt(next) < BigInt(end.low)) return `checkpoint ${partition}:${next} is below the topic's low watermark ${end.low}`;
    if (BigInt(next) > BigInt(end.high)) return `checkpoint ${partition}:${next} is past the topic's end ${end.high} (was it recreated?)`;
  }
  return undefined;
}

const jsonBytes = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

/** JSON values checked by a parse function (e.g. a zod schema's parse). */
export const jsonValue = <V>(check: (v: unknown) => V) => (b: Buffer) => check(JSON.parse(b.toString('utf8')));

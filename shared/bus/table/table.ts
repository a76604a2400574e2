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
  parse: (value: Buffer) => V;
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
// A crash loses only pending changes, whose checkpoint was not written either: they are read again.
const FLUSH_MS = 200;
const FLUSH_MAX = 20_000;

/**
 * A compacted topic as a key-value table: every instance sees every write, the state survives
 * restarts of everything, and `start` resolves once the topic was read up to its high watermark
 * as of start (read_committed). `get` is synchronous, from the heap or from LMDB.
 */
export class KafkaTable<V> {
  private store: TableStore<V> = new MemoryStore<V>();
  private readonly local = new Map<string, { value: V | undefined; bytes: string | null; at: number }>();
  private reader: Reader | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly expiryOf: ExpiryOf<V> | undefined;
  /** Per partition, the offset after the last batch applied (transaction markers included). */
  private readonly positions = new Map<number, bigint>();
  /** Changes read from the topic, applied here but not yet written to a disk store, with their checkpoints. */
  private readonly pending = new Map<string, V | undefined>();
  private readonly pendingCheckpoints = new Map<number, string>();
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
    if (this.opts.stateDir) ({ store: this.store, reset } = LmdbStore.open<V>(join(this.opts.stateDir, topic), topic, this.expiryOf));
    else this.store = new MemoryStore<V>(this.expiryOf);
    let from = this.store.checkpoint();
    const stale = staleCheckpoint(from, await bus.offsets(topic));
    if (stale) {
      this.store.clear();
      from = new Map();
      reset = stale;
    }
    if (reset) logger.warn({ topic, reason: reset }, 'table store rebuilt from the topic');
    for (const [p, next] of from) this.positions.set(p, BigInt(next));
    let read = 0;
    this.reader = await bus.read({ topic, from, onBatch: (b) => void (read += this.applyBatch(b)), fetch: this.opts.fetch });
    this.ready = withDeadline(this.reader.caughtUp, timeoutMs, () => new HubError('table_not_ready', `reading ${topic} took over ${timeoutMs} ms`, { retryable: true }));
    await this.ready;
    this.flush();
    // A store resumed from its checkpoint may hold values that expired while the service was down.
    if (this.expiryOf) this.sweep();
    this.restored = { records: read, from: from.size ? 'checkpoint' : 'beginning', reset, ms: Date.now() - began };
    logger.info({ topic, entries: this.store.size, records_read: read, from: this.restored.from, store: this.opts.stateDir ? 'disk' : 'memory', ms: this.restored.ms }, 'table ready');
    this.sweeper = setInterval(() => this.maintain(), Math.min(this.opts.expire?.sweepMs ?? 60_000, 5_000));
    this.sweeper.unref();
  }

  /** Applies one batch read from the topic, with its checkpoint; returns how many records it held. */
  private applyBatch(b: ReadBatch): number {
    const changes: Change<V>[] = [];
    const now = Date.now();
    for (const r of b.records) {
      if (!r.key) continue;
      const key = r.key.toString();
      const mine = this.local.get(key);
      if (mine) {
        if ((r.value === null ? null : r.value.toString('utf8')) === mine.bytes) {
          // This process's own write coming back: stored as it was applied, not parsed again.
          this.local.delete(key);
          changes.push([key, mine.value === undefined || (this.expiryOf && this.expiryOf(mine.value) < now) ? undefined : mine.value]);
          continue;
        }
        if (Number(r.timestamp) >= mine.at) this.local.delete(key); // another writer's newer value
      }
      if (r.value === null) {
        changes.push([key, undefined]);
        continue;
      }
      try {
        const value = this.opts.parse(r.value);
        changes.push([key, this.expiryOf && this.expiryOf(value) < now ? undefined : value]);
      } catch (e) {
        this.opts.logger.error({ topic: this.opts.topic, key, err: e }, 'unreadable table record skipped');
      }
    }
    if (this.opts.stateDir) {
      for (const [key, value] of changes) this.pending.set(key, value);
      this.pendingCheckpoints.set(b.partition, b.next);
      if (this.pending.size >= FLUSH_MAX) this.flush();
      else this.flushTimer ??= setTimeout(() => this.flushSafely(), FLUSH_MS).unref();
    } else this.store.apply(changes, new Map([[b.partition, b.next]]));
    this.positions.set(b.partition, BigInt(b.next));
    if (this.opts.onChange) for (const [key, value] of changes) this.opts.onChange(key, value);
    return b.records.length;
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

  /** A timer's flush: a store that refuses the write keeps the changes pending for the next one. */
  private flushSafely(): void {
    try {
      this.flush();
    } catch (e) {
      this.flushTimer = undefined;
      this.opts.logger.error({ topic: this.opts.topic, err: e }, 'table store write failed; kept in memory, tried again');
      this.flushTimer = setTimeout(() => this.flushSafely(), 1000).unref();
    }
  }

  /** Writes what was read but not yet stored, with its checkpoints, in one commit. */
  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pendingCheckpoints.size === 0) return;
    this.store.apply([...this.pending], new Map(this.pendingCheckpoints));
    this.pending.clear();
    this.pendingCheckpoints.clear();
  }

  private maintain(now = Date.now()): void {
    for (const [k, e] of this.local) if (now - e.at > LOCAL_MAX_MS) this.local.delete(k);
    if (this.expiryOf && now - this.lastSweep >= (this.opts.expire?.sweepMs ?? 60_000)) this.sweep(now);
  }

  private lastSweep = Date.now();

  /** Drops expired values; returns how many. */
  sweep(now = Date.now()): number {
    this.flush();
    this.lastSweep = now;
    let dropped = this.store.sweep(now);
    return dropped;
  }

  get size(): number {
    this.flush();
    return this.store.size;
  }

  /** The value of `key`; an expired one counts as absent even before a sweep drops it. */
  get(key: string): V | undefined {
    const l = this.local.get(key);
    const v = l ? l.value : this.pending.has(key) ? this.pending.get(key) : this.store.get(key);
    return v !== undefined && this.expiryOf && this.expiryOf(v) < Date.now() ? undefined : v;
  }

  entries(): [string, V][] {
    this.flush();
    const out: [string, V][] = [];
    for (const [k, v] of this.store.entries()) if (!this.local.has(k)) out.push([k, v]);
    for (const [k, e] of this.local) if (e.value !== undefined) out.push([k, e.value]);
    return out;
  }

  /**
   * The record that sets `key`; publish it alone or atomically with others. Its JSON is kept (by
   * value object) for `applyLocal` of the same value: a value is not changed once recorded.
   */
  record(key: string, value: V | undefined): OutgoingRecord {
    if (value === undefined) return { topic: this.opts.topic, key, value: null };
    const json = JSON.stringify(value);
    if (typeof value === 'object' && value !== null) this.encoded.set(value, json);
    return { topic: this.opts.topic, key, value: Buffer.from(json) };
  }

  /** The JSON `record` made of a value, so applying that value locally does not encode it again. */
  private readonly encoded = new WeakMap<object, string>();

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
    const bytes = value === undefined ? null : ((typeof value === 'object' && value !== null && this.encoded.get(value)) || JSON.stringify(value));
    this.local.set(key, { value, bytes, at: Date.now() });
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await this.reader?.close();
    this.flush();
    await this.store.close();
  }
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

/** JSON values checked by a parse function (e.g. a zod schema's parse). */
export const jsonValue = <V>(check: (v: unknown) => V) => (b: Buffer) => check(JSON.parse(b.toString('utf8')));

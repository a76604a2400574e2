import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open, TransactionFlags, type Database, type RootDatabase } from 'lmdb';
import { HubError } from '../../errors.ts';
import { checkLmdbFiles, markClosed, markOpen, PAGE_SIZE } from './lmdb-check.ts';
import type { Change, ExpiryOf, TableStore } from './store.ts';

// 2: values are the topic's record bytes (binary), not msgpack: a change is written without
// encoding it again (make bench-commands: 1.3-1.6 us a change on the event loop against 4.3-5.4).
const FORMAT = 2;
// Commit synchronously (a `get` right after `apply` sees the write) but let lmdb-js flush to
// disk in the background: a crash of the machine may lose the last commits, never the store's
// integrity, and the checkpoint travels in the same commit as its data, so the lost part is
// simply read again from the topic.
const COMMIT = TransactionFlags.ABORTABLE | TransactionFlags.SYNCHRONOUS_COMMIT | TransactionFlags.NO_SYNC_FLUSH;
const openDirs = new Set<string>();

/**
 * A table's state in LMDB (memory-mapped B-tree files; reads are synchronous and cost no heap).
 * Databases: `data` (key -> the value's record bytes, read with the table's parse), `expiry` ([expires at, key], so a sweep reads only
 * what is due; entries of replaced values included), `meta` (format, topic, and
 * `cp:<partition>` -> next offset).
 */
/** How many decoded values a store keeps at hand (see `recent`). */
const RECENT_MAX = 4096;

export class LmdbStore<V> implements TableStore<V> {
  private constructor(
    private readonly dir: string,
    private readonly env: RootDatabase,
    private readonly data: Database<Buffer, string>,
    private readonly expiry: Database<number, [number, string]>,
    private readonly meta: Database<unknown, string>,
    private readonly decode: (bytes: Buffer, key: string) => V,
    private readonly expiryOf?: ExpiryOf<V>,
  ) {}

  /**
   * Opens (or creates) the store of `topic` in `dir`. A store that cannot be opened, or holds
   * another topic or format, or was filled from another Kafka cluster (`opts.cluster`, its id: a
   * state folder used against another broker, whose offsets mean nothing here), is wiped: the
   * topic is the source of truth and rebuilds it. `opts.expiryOf` gives an entry's expiry.
   * `reset` says why it started empty, if it did.
   */
  static open<V>(dir: string, topic: string, decode: (bytes: Buffer, key: string) => V, opts: { expiryOf?: ExpiryOf<V>; cluster?: string } = {}): { store: LmdbStore<V>; reset?: string } {
    const { expiryOf, cluster } = opts;
    lock(dir);
    try {
      const store = LmdbStore.tryOpen<V>(dir, decode, expiryOf);
      const format = store.meta.get('format') as { version: number; topic: string; cluster?: string } | undefined;
      const sameCluster = !cluster || !format?.cluster || format.cluster === cluster;
      if (format && format.version === FORMAT && format.topic === topic && sameCluster) {
        // A store written before stores named their cluster learns it now.
        if (cluster && !format.cluster) store.meta.putSync('format', { ...format, cluster });
        return { store };
      }
      const reset = !format ? undefined : sameCluster ? `the store holds ${format.topic} (format ${format.version})` : `the store was filled from another Kafka cluster (${format.cluster}, now ${cluster})`;
      store.clear();
      store.meta.putSync('format', { version: FORMAT, topic, ...(cluster ? { cluster } : {}) });
      return { store, reset };
    } catch (e) {
      // Unreadable (truncated, overwritten, wrong version): start from an empty directory.
      rmSync(dir, { recursive: true, force: true });
      openDirs.delete(dir);
      lock(dir);
      const store = LmdbStore.tryOpen<V>(dir, decode, expiryOf);
      store.meta.putSync('format', { version: FORMAT, topic, ...(cluster ? { cluster } : {}) });
      return { store, reset: `the store could not be read (${(e as Error).message})` };
    }
  }

  private static tryOpen<V>(dir: string, decode: (bytes: Buffer, key: string) => V, expiryOf?: ExpiryOf<V>): LmdbStore<V> {
    // remapChunks maps the file in chunks as they are used instead of all at once, so the
    // resident set stays near what is read, not the size of the file.
    const path = join(dir, 'lmdb');
    checkLmdbFiles(path);
    markOpen(path);
    // noReadAhead (not in lmdb's typings): the kernel reads only the pages asked for.
    const env = open({ path, maxDbs: 4, pageSize: PAGE_SIZE, remapChunks: true, noMemInit: true, ...{ noReadAhead: true } });
    try {
      const data = env.openDB<Buffer, string>({ name: 'data', encoding: 'binary' });
      const expiry = env.openDB<number, [number, string]>({ name: 'expiry', encoding: 'msgpack', keyEncoding: 'ordered-binary' });
      const meta = env.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' });
      meta.get('format'); // fails here, not later, on a store that is not one
      return new LmdbStore(dir, env, data, expiry, meta, decode, expiryOf);
    } catch (e) {
      void env.close().catch(() => undefined);
      throw e;
    }
  }

  get(key: string): V | undefined {
    const hit = this.recent.get(key);
    if (hit !== undefined) return hit;
    const b = this.data.get(key);
    if (b === undefined) return undefined;
    const value = this.decode(b, key);
    this.remember(key, value);
    return value;
  }

  /**
   * Values read or written lately, decoded: a lookup of a hot key (a shop's link on every delivery,
   * a workspace's settings on every command) is a Map hit instead of an LMDB read, JSON.parse and
   * schema check (4.5% of the inbox processor's time, 2.9% of the edge's). Bounded, oldest first
   * out; every write and removal of a key goes through it.
   */
  private readonly recent = new Map<string, V>();

  private remember(key: string, value: V): void {
    this.recent.delete(key);
    this.recent.set(key, value);
    if (this.recent.size > RECENT_MAX) this.recent.delete(this.recent.keys().next().value!);
  }

  apply(changes: Change<V>[], checkpoints: ReadonlyMap<number, string>): void {
    this.env.transactionSync(() => void this.write(changes, checkpoints, false), COMMIT);
  }

  applyAsync(changes: Change<V>[], checkpoints: ReadonlyMap<number, string>): Promise<void> {
    // Operations queued in one event turn are one transaction, committed by lmdb-js's write
    // thread in the order queued (checkpoints last); they share one promise in practice.
    return Promise.all(this.write(changes, checkpoints, true)).then(() => undefined);
  }

  /**
   * The changes, then their checkpoints: written at once (inside a synchronous transaction) or
   * queued for lmdb-js's write thread (`queued`: their commit promises are returned).
   */
  private write(changes: Change<V>[], checkpoints: ReadonlyMap<number, string>, queued: boolean): Set<Promise<boolean>> {
    const commits = new Set<Promise<boolean>>();
    const put = <K extends string | [number, string]>(db: Database<unknown, K>, key: K, value: unknown) => void (queued ? commits.add(db.put(key, value)) : db.putSync(key, value));
    for (const change of changes) {
      if (change[1] === undefined) {
        this.recent.delete(change[0]);
        if (queued) commits.add(this.data.remove(change[0]));
        else this.data.removeSync(change[0]);
        continue;
      }
      const [key, value, bytes] = change;
      this.remember(key, value);
      put(this.data as Database<unknown, string>, key, bytes);
      // The entry of the value this one replaces stays in the index: the sweep drops it when it
      // comes due and finds a value that expires later. Looking the old value up to remove its
      // entry made 4 LMDB operations of every change instead of 2 (make bench-commands: 10 us a
      // change before, 8.1 after; a flush of 4,500 changes held the event loop 32 ms).
      const at = this.expiryOf?.(value);
      if (at !== undefined && Number.isFinite(at)) put(this.expiry as Database<unknown, [number, string]>, [at, key], 1);
    }
    // `cp:` keeps the offset alone, as it always did (a store stays readable by older code); what
    // follows it in the table's checkpoint (`<next>@<record>`, the last record read) goes to `lr:`.
    for (const [partition, checkpoint] of checkpoints) {
      const at = checkpoint.indexOf('@');
      put(this.meta, `cp:${partition}`, at === -1 ? checkpoint : checkpoint.slice(0, at));
      put(this.meta, `lr:${partition}`, at === -1 ? '' : checkpoint.slice(at + 1));
    }
    return commits;
  }

  checkpoint(): Map<number, string> {
    const out = new Map<number, string>();
    for (const { key, value } of this.meta.getRange({ start: 'cp:', end: 'cp;' })) {
      const last = this.meta.get(`lr:${key.slice(3)}`);
      out.set(Number(key.slice(3)), last ? `${String(value)}@${String(last)}` : String(value));
    }
    return out;
  }

  *entries(): Iterable<[string, V]> {
    for (const { key, value } of this.data.getRange()) yield [key, this.decode(value, key)];
  }

  get size(): number {
    return (this.data.getStats() as { entryCount: number }).entryCount;
  }

  sweep(cutoff: number): number {
    let dropped = 0;
    // In slices, so one sweep of many expired values does not hold a write transaction long.
    for (;;) {
      const due = [...this.expiry.getKeys({ end: [cutoff], limit: 5000 })];
      if (due.length === 0) return dropped;
      this.env.transactionSync(() => {
        for (const [at, key] of due) {
          this.expiry.removeSync([at, key]);
          // An entry of a value since replaced: the key's value now may expire later (or never).
          const now = this.get(key);
          if (now !== undefined && !(this.expiryOf && this.expiryOf(now) <= cutoff)) continue;
          this.recent.delete(key);
          if (this.data.removeSync(key)) dropped++;
        }
      }, COMMIT);
    }
  }

  clear(): void {
    this.recent.clear();
    this.env.transactionSync(() => {
      for (const key of [...this.data.getKeys()]) this.data.removeSync(key);
      for (const key of [...this.expiry.getKeys()]) this.expiry.removeSync(key);
      for (const key of [...this.meta.getKeys({ start: 'cp:', end: 'cp;' })]) this.meta.removeSync(key);
      for (const key of [...this.meta.getKeys({ start: 'lr:', end: 'lr;' })]) this.meta.removeSync(key);
    });
  }

  async close(): Promise<void> {
    await this.env.flushed;
    await this.env.close();
    markClosed(join(this.dir, 'lmdb'));
    rmSync(join(this.dir, 'owner.pid'), { force: true });
    openDirs.delete(this.dir);
  }
}

/** One process per state directory: two writers would move each other's checkpoints. */
function lock(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'owner.pid');
  let owner = NaN;
  try {
    owner = Number(readFileSync(file, 'utf8'));
  } catch {
    // no owner yet
  }
  const alive = owner !== process.pid && Number.isInteger(owner) && owner > 0 && isAlive(owner);
  if (alive || (owner === process.pid && openDirs.has(dir))) {
    throw new HubError('state_dir_in_use', `${dir} is used by process ${owner}; give each instance its own IONFLUX_STATE_DIR or instance id`);
  }
  writeFileSync(file, String(process.pid));
  openDirs.add(dir);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One change read from the topic: undefined for a tombstone, or a value with the record's bytes
 * (what a disk store keeps, so it never encodes a value itself).
 */
export type Change<V> = [key: string, value: undefined] | [key: string, value: V, bytes: Buffer];

/**
 * Where a KafkaTable keeps its state. `apply` writes changes together with the next offset of
 * each partition they came from, atomically, so a checkpoint never runs ahead of the data it covers.
 */
export interface TableStore<V> {
  get(key: string): V | undefined;
  apply(changes: Change<V>[], checkpoints: ReadonlyMap<number, string>): void;
  /**
   * `apply` done on the store's own write thread (LMDB; the memory store applies at once),
   * committed when the promise resolves (reads see the changes only then). All in one commit;
   * never called while an earlier one is in flight.
   */
  applyAsync(changes: Change<V>[], checkpoints: ReadonlyMap<number, string>): Promise<void>;
  /** Next offset per partition of everything applied so far (empty for a new store). */
  checkpoint(): Map<number, string>;
  entries(): Iterable<[string, V]>;
  readonly size: number;
  /** Drops values whose expiry time is before `cutoff`; returns how many. */
  sweep(cutoff: number): number;
  /** Forgets everything, checkpoint included. */
  clear(): void;
  close(): Promise<void>;
}

/** The expiry time of a value (ms since epoch), or Infinity when it never expires. */
export type ExpiryOf<V> = (value: V) => number;

/** The state in the heap: for small tables, the CLI's one-off reads and unit tests. */
export class MemoryStore<V> implements TableStore<V> {
  private readonly map = new Map<string, V>();
  private readonly next = new Map<number, string>();

  constructor(private readonly expiryOf?: ExpiryOf<V>) {}

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  apply(changes: Change<V>[], checkpoints: ReadonlyMap<number, string>): void {
    for (const [key, value] of changes) {
      if (value === undefined) this.map.delete(key);
      else this.map.set(key, value);
    }
    for (const [partition, next] of checkpoints) this.next.set(partition, next);
  }

  async applyAsync(changes: Change<V>[], checkpoints: ReadonlyMap<number, string>): Promise<void> {
    this.apply(changes, checkpoints);
  }

  checkpoint(): Map<number, string> {
    return new Map(this.next);
  }

  entries(): Iterable<[string, V]> {
    return this.map.entries();
  }

  get size(): number {
    return this.map.size;
  }

  sweep(cutoff: number): number {
    if (!this.expiryOf) return 0;
    let dropped = 0;
    for (const [key, value] of this.map) if (this.expiryOf(value) < cutoff && this.map.delete(key)) dropped++;
    return dropped;
  }

  clear(): void {
    this.map.clear();
    this.next.clear();
  }

  async close(): Promise<void> {}
}

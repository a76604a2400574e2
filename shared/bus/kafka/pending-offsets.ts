/** A consumed partition's next offset to commit. */
export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  offset: string;
}

const keyOf = (t: string, p: number) => `${t}|${p}`;

/**
 * The offsets a consumer resolved and has not committed yet, one per partition (the latest).
 * `take` hands them to a commit; a commit that fails gives them back (`failed`) unless a later
 * offset of the partition was resolved meanwhile, so a partition that goes quiet after a failed
 * commit still gets its offset committed by the next one instead of being read again after a
 * restart. After a rejoin only the partitions this member still holds are kept (`assigned`): an
 * offset is committed only by the partition's owner.
 */
export class PendingOffsets {
  private readonly pending = new Map<string, TopicPartitionOffset>();

  resolve(o: TopicPartitionOffset): void {
    this.pending.set(keyOf(o.topic, o.partition), o);
  }

  take(): TopicPartitionOffset[] {
    const all = [...this.pending.values()];
    this.pending.clear();
    return all;
  }

  failed(offsets: TopicPartitionOffset[]): void {
    for (const o of offsets) {
      const key = keyOf(o.topic, o.partition);
      if (!this.pending.has(key)) this.pending.set(key, o);
    }
  }

  /** Keeps only the partitions of `assignment` (kafkajs's memberAssignment: topic -> partitions). */
  assigned(assignment: Record<string, number[]>): void {
    for (const [key, o] of this.pending) if (!assignment[o.topic]?.includes(o.partition)) this.pending.delete(key);
  }
}

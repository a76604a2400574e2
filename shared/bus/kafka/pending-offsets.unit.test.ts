import { describe, expect, it } from 'vitest';
import { PendingOffsets } from './pending-offsets.ts';

const at = (topic: string, partition: number, offset: number) => ({ topic, partition, offset: String(offset) });

describe('PendingOffsets: what a consumer still has to commit', () => {
  it('keeps the latest resolved offset of each partition and hands them over once', () => {
    const p = new PendingOffsets();
    p.resolve(at('a', 0, 5));
    p.resolve(at('a', 0, 9));
    p.resolve(at('a', 1, 3));
    expect(p.take()).toEqual([at('a', 0, 9), at('a', 1, 3)]);
    expect(p.take()).toEqual([]);
  });

  it('gets back the offsets of a failed commit, so a partition that went quiet is still committed', () => {
    const p = new PendingOffsets();
    p.resolve(at('a', 0, 9));
    p.resolve(at('a', 1, 3));
    const commit = p.take();
    p.resolve(at('a', 0, 12)); // resolved while the commit was under way
    p.failed(commit);
    expect(p.take()).toEqual([at('a', 0, 12), at('a', 1, 3)]);
  });

  it('keeps only the partitions still assigned after a rejoin', () => {
    const p = new PendingOffsets();
    p.resolve(at('a', 0, 9));
    p.resolve(at('a', 1, 3));
    p.resolve(at('b', 2, 7));
    p.assigned({ a: [1], c: [0] });
    expect(p.take()).toEqual([at('a', 1, 3)]);
  });
});

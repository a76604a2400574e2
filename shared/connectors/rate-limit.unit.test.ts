import { describe, expect, it } from 'vitest';
import { TokenBuckets } from './rate-limit.ts';

describe('token buckets', () => {
  it('lets a burst through, then spaces calls at the rate, per key', () => {
    const b = new TokenBuckets(10, 2);
    expect([b.take('a', 0), b.take('a', 0)]).toEqual([0, 0]);
    expect(b.take('a', 0)).toBe(100);
    expect(b.take('b', 0)).toBe(0); // another workspace is not held up
    expect(b.take('a', 1000)).toBe(0); // refilled
  });
});

import { describe, expect, it } from 'vitest';
import { CostThrottle } from './throttle.ts';

describe('CostThrottle', () => {
  it('waits only for the points missing, at the restore rate', () => {
    let now = 0;
    const t = new CostThrottle(() => now);
    expect(t.waitMs('a.myshopify.com', 500)).toBe(0);
    t.observe('a.myshopify.com', { maximumAvailable: 1000, currentlyAvailable: 100, restoreRate: 50 });
    expect(t.waitMs('a.myshopify.com', 600)).toBe(10_000);
    now = 4000; // 200 points restored
    expect(t.available('a.myshopify.com')).toBe(300);
    expect(t.waitMs('a.myshopify.com', 600)).toBe(6000);
    expect(t.waitMs('a.myshopify.com', 300)).toBe(0);
    now = 60_000;
    expect(t.available('a.myshopify.com')).toBe(1000);
    // A query costing more than the bucket holds waits for a full bucket, not forever.
    expect(t.waitMs('a.myshopify.com', 5000)).toBe(0);
  });
});

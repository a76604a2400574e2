/**
 * Shopify's cost-based limit, as the last answer for a shop described it
 * (`extensions.cost.throttleStatus`): a bucket of `maximumAvailable` points refilled at
 * `restoreRate` per second. Before a query the bucket's level now is estimated from that answer;
 * a query needing more than that waits for the difference, so the hub never sends what Shopify
 * would refuse. THROTTLED answers (another client on the same app and shop spent the points) wait
 * the computed time too.
 */
export interface ThrottleStatus {
  maximumAvailable: number;
  currentlyAvailable: number;
  restoreRate: number;
}

interface Seen extends ThrottleStatus {
  at: number;
}

export class CostThrottle {
  private readonly shops = new Map<string, Seen>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Records the bucket a response reported. */
  observe(shop: string, s: ThrottleStatus): void {
    this.shops.set(shop, { ...s, at: this.now() });
  }

  /** The estimated points available for `shop` now (Infinity before its first answer). */
  available(shop: string): number {
    const s = this.shops.get(shop);
    if (!s) return Infinity;
    return Math.min(s.maximumAvailable, s.currentlyAvailable + ((this.now() - s.at) / 1000) * s.restoreRate);
  }

  /** Milliseconds to wait before a query of `cost` points may be sent to `shop` (0: now). */
  waitMs(shop: string, cost: number): number {
    const s = this.shops.get(shop);
    if (!s || s.restoreRate <= 0) return 0;
    const short = Math.min(cost, s.maximumAvailable) - this.available(shop);
    return short <= 0 ? 0 : Math.ceil((short / s.restoreRate) * 1000);
  }
}

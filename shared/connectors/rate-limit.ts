/**
 * Token buckets keyed by (workspace, vendor): `take` says how long to wait for a token, so one
 * workspace over its limit waits without holding the others.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly ratePerSecond: number, private readonly burst: number) {}

  /** Milliseconds to wait before the call may go (0 = now); the token is reserved either way. */
  take(key: string, now = Date.now()): number {
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.ratePerSecond);
    b.at = now;
    b.tokens -= 1;
    this.buckets.set(key, b);
    return b.tokens >= 0 ? 0 : Math.ceil((-b.tokens / this.ratePerSecond) * 1000);
  }

  /** Returns the token `take` reserved, for a call that will not go now (it takes one again when it does). */
  giveBack(key: string): void {
    const b = this.buckets.get(key);
    if (b) b.tokens = Math.min(this.burst, b.tokens + 1);
  }
}

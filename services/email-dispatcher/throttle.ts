/**
 * Token buckets that take several tokens at once (a SendGrid batch is many messages) and can be
 * blocked until a time the provider named (429 Retry-After / X-RateLimit-Reset). Keyed by
 * provider account or workspace, so one account's throttling never holds another's.
 */
export class Throttle {
  private readonly buckets = new Map<string, { tokens: number; at: number; blockedUntil: number }>();

  constructor(private readonly ratePerSecond: number, private readonly burst: number) {}

  /** Milliseconds to wait before `n` messages may go; the tokens are reserved either way. */
  take(key: string, n = 1, now = Date.now()): number {
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now, blockedUntil: 0 };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.ratePerSecond) - n;
    b.at = now;
    this.buckets.set(key, b);
    const refill = b.tokens >= 0 ? 0 : Math.ceil((-b.tokens / this.ratePerSecond) * 1000);
    return Math.max(refill, b.blockedUntil - now);
  }

  /** Nothing goes for `key` before `until` (epoch ms). */
  block(key: string, until: number): void {
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: Date.now(), blockedUntil: 0 };
    b.blockedUntil = Math.max(b.blockedUntil, until);
    this.buckets.set(key, b);
  }
}

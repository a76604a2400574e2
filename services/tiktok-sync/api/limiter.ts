import { DEFER_MIN_MS } from '../../../shared/commands/execute.ts';
import { VendorError } from '../../../shared/connectors/types.ts';
import { HubError } from '../../../shared/errors.ts';
import { ENDPOINTS, type EndpointName } from './endpoints.ts';

export interface AcquireOptions {
  signal?: AbortSignal;
  /** Longer waits fail `rate_limited` (not retryable). Default 65 s: a one-minute window's worth. */
  maxWaitMs?: number;
  /**
   * A command the core can defer (ctx.deferrable): a wait of DEFER_MIN_MS or more is not slept
   * here but thrown as a retryable VendorError 429 whose retryAfterMs is the wait, so only the
   * command's workspace topic waits. Shorter waits are slept.
   */
  deferLongWaits?: boolean;
}

/**
 * Sliding-window limits per (endpoint, app or token), so this instance stays under TikTok's limits
 * instead of learning them from 429s. A call waits for a free slot (only that endpoint and key
 * wait); a wait longer than the caller can afford fails `rate_limited` naming when to retry.
 */
export class EndpointLimiter {
  /** Per key, when each call in the window counts from (see `acquire`). */
  private readonly calls = new Map<string, { t: number }[]>();
  /** Set after a 429: the key sends nothing until then. */
  private readonly cooling = new Map<string, number>();

  constructor(private readonly limits: Record<EndpointName, number>) {}

  /** Milliseconds until a call would fit (0: now). */
  delay(ep: EndpointName, key: string, now = Date.now()): number {
    const k = `${ep}:${key}`;
    const window = ENDPOINTS[ep].windowMs;
    const list = (this.calls.get(k) ?? []).filter((c) => now - c.t < window).sort((a, b) => a.t - b.t);
    this.calls.set(k, list);
    const cool = Math.max(0, (this.cooling.get(k) ?? 0) - now);
    const full = list.length >= this.limits[ep] ? list[list.length - this.limits[ep]]!.t + window - now : 0;
    return Math.max(cool, full);
  }

  /**
   * Waits for a slot (with `deferLongWaits`, throws a wait of a second or more instead). The call counts from now; `done()`, once TikTok answered, moves it to then:
   * TikTok counts a request from when it arrived, which is no later than its answer, so this
   * window never frees a slot before TikTok's does.
   */
  async acquire(ep: EndpointName, key: string, o: AcquireOptions = {}): Promise<{ done(): void }> {
    const maxWaitMs = o.maxWaitMs ?? 65_000;
    for (;;) {
      const wait = this.delay(ep, key);
      if (wait === 0) {
        const slot = { t: Date.now() };
        this.calls.get(`${ep}:${key}`)!.push(slot);
        return { done: () => void (slot.t = Date.now()) };
      }
      if (wait > maxWaitMs) throw Object.assign(new HubError('rate_limited', `TikTok's ${ENDPOINTS[ep].path} limit is used up; next call possible in ${Math.ceil(wait / 1000)} s`, { retryable: false }), { retryAfterMs: wait });
      if (o.deferLongWaits && wait >= DEFER_MIN_MS) {
        const why = (this.cooling.get(`${ep}:${key}`) ?? 0) - Date.now() >= wait ? 'rests after TikTok answered 429' : `limit (${this.limits[ep]} calls per ${ENDPOINTS[ep].windowMs / 1000} s per ${ENDPOINTS[ep].per}) is used up`;
        throw new VendorError(429, `TikTok's ${ENDPOINTS[ep].path} ${why}; next call possible in ${Math.ceil(wait / 1000)} s`, { retryAfterMs: wait });
      }
      await sleep(Math.min(wait, 1000), o.signal);
    }
  }

  /** After a 429 from TikTok: nothing goes to that endpoint for this key for `ms`. */
  coolDown(ep: EndpointName, key: string, ms: number): void {
    this.cooling.set(`${ep}:${key}`, Date.now() + ms);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

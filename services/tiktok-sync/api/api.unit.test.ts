import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { VendorError } from '../../../shared/connectors/types.ts';
import { HubError } from '../../../shared/errors.ts';
import { parseAllowlist } from '../../../shared/net/allowlist.ts';
import { configureOutbound } from '../../../shared/net/outbound.ts';
import { createTikTokApi } from './client.ts';
import { limitsFrom } from './endpoints.ts';
import { AccessTokenInvalid, fromTikTok, refusedByTikTok } from './errors.ts';
import { parseJsonKeepingInt64 } from './json.ts';
import { EndpointLimiter } from './limiter.ts';

describe('TikTok answers', () => {
  it('keeps every digit of int64 ids, leaves strings and small numbers alone', () => {
    const text = '{"data":{"publicaly_available_post_id":[7300000000001234567],"n":12,"f":1.5,"neg":-9223372036854775807,"s":"a: 12345678901234567890,"},"error":{"code":"ok"}}';
    expect(parseJsonKeepingInt64(text)).toEqual({ data: { publicaly_available_post_id: ['7300000000001234567'], n: 12, f: 1.5, neg: '-9223372036854775807', s: 'a: 12345678901234567890,' }, error: { code: 'ok' } });
  });

  it('tells a refusal (nothing done at TikTok: init may run again) from an answer that may have taken effect', () => {
    const base = { message: 'm', path: '/v2/post/publish/video/init/', scopes: ['video.publish'] };
    for (const [status, code] of [[401, 'access_token_invalid'], [400, 'invalid_params'], [403, 'spam_risk_too_many_posts'], [429, 'rate_limit_exceeded']] as const) expect(refusedByTikTok(fromTikTok({ ...base, status, code })), code).toBe(true);
    // A 4xx without TikTok's envelope (a proxy's page) is a refusal too; a 5xx or a network error is not.
    expect(refusedByTikTok(new VendorError(403, 'TikTok /v2/post/publish/video/init/ answered 403 without its JSON envelope'))).toBe(true);
    expect(refusedByTikTok(new VendorError(502, 'answered 502 without its JSON envelope'))).toBe(false);
    expect(refusedByTikTok(fromTikTok({ ...base, status: 500, code: 'internal_error' }))).toBe(false);
    expect(refusedByTikTok(new VendorError(503, 'TikTok unreachable: ECONNRESET'))).toBe(false);
    expect(refusedByTikTok(new Error('aborted'))).toBe(false);
  });

  it('maps error codes to what the command core does with them', () => {
    const base = { message: 'm', logId: 'L1', path: '/v2/video/list/', scopes: ['video.list'] };
    expect(fromTikTok({ ...base, status: 401, code: 'access_token_invalid' })).toBeInstanceOf(AccessTokenInvalid);
    const scope = fromTikTok({ ...base, status: 401, code: 'scope_not_authorized' }) as HubError;
    expect([scope.code, scope.retryable, scope.message.includes('video.list')]).toEqual(['scope_not_authorized', false, true]);
    const throttled = fromTikTok({ ...base, status: 429, code: 'rate_limit_exceeded', retryAfterMs: 1234 }) as VendorError;
    expect([throttled.status, throttled.retryable, throttled.retryAfterMs]).toEqual([429, true, 1234]);
    expect((fromTikTok({ ...base, status: 500, code: 'internal_error' }) as VendorError).retryable).toBe(true);
    const bad = fromTikTok({ ...base, status: 400, code: 'invalid_params' }) as HubError;
    expect([bad.code, bad.retryable, bad.message]).toEqual(['tiktok_invalid_params', false, 'TikTok /v2/video/list/: m (log_id L1)']);
    // A 401 is never a VendorError 401: that would mark the connection needs_reauth without trying a refresh.
    expect(fromTikTok({ ...base, status: 401, code: 'access_token_invalid' })).not.toBeInstanceOf(VendorError);
  });
});

/** Runs `fn` on vitest's fake clock, starting at `now`. */
async function onFakeClock(now: number, fn: () => Promise<void>): Promise<void> {
  vi.useFakeTimers({ now });
  try {
    await fn();
  } finally {
    vi.useRealTimers();
  }
}

describe('EndpointLimiter', () => {
  it('lets the documented number through per window, then says how long to wait', () => {
    const l = new EndpointLimiter(limitsFrom(JSON.stringify({ 'publish.init': 2 })));
    const t0 = 1_000_000;
    expect(l.delay('publish.init', 'tok', t0)).toBe(0);
    (l as unknown as { calls: Map<string, { t: number }[]> }).calls.set('publish.init:tok', [{ t: t0 + 10 }, { t: t0 }]);
    expect(l.delay('publish.init', 'tok', t0 + 20)).toBe(60_000 - 20);
    expect(l.delay('publish.init', 'other-token', t0 + 20)).toBe(0);
    expect(l.delay('publish.init', 'tok', t0 + 60_001)).toBe(0); // the first call left the window
  });

  it('counts a call from when it was answered, never earlier than TikTok does', async () => {
    await onFakeClock(5_000_000, async () => {
      const l = new EndpointLimiter(limitsFrom(JSON.stringify({ 'publish.init': 1 })));
      const slot = await l.acquire('publish.init', 'tok');
      vi.setSystemTime(5_000_300); // the answer came 300 ms later
      expect(l.delay('publish.init', 'tok')).toBe(60_000 - 300);
      slot.done();
      expect(l.delay('publish.init', 'tok')).toBe(60_000);
    });
  });

  it('rests an endpoint after a 429 and refuses waits longer than the caller allows', async () => {
    const l = new EndpointLimiter(limitsFrom(undefined));
    l.coolDown('video.list', 'app', 5000);
    expect(l.delay('video.list', 'app')).toBeGreaterThan(4000);
    await expect(l.acquire('video.list', 'app', { maxWaitMs: 100 })).rejects.toMatchObject({ code: 'rate_limited' });
  });

  it("hands a command's wait of a second or more to the command core as a 429 with that wait, instead of sleeping it", async () => {
    await onFakeClock(7_000_000, async () => {
      const l = new EndpointLimiter(limitsFrom(JSON.stringify({ 'publish.init': 1 })));
      (await l.acquire('publish.init', 'tok')).done();
      vi.setSystemTime(7_000_000 + 15_000);
      const e = await l.acquire('publish.init', 'tok', { deferLongWaits: true }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(VendorError);
      expect(e).toMatchObject({ status: 429, retryable: true, retryAfterMs: 45_000, message: expect.stringContaining('limit (1 calls per 60 s per token) is used up; next call possible in 45 s') });
      expect(l.delay('publish.init', 'tok')).toBe(45_000); // no slot was taken
      // The rest of a rest after TikTok's 429 likewise.
      l.coolDown('video.list', 'app', 5000);
      await expect(l.acquire('video.list', 'app', { deferLongWaits: true })).rejects.toMatchObject({ status: 429, retryAfterMs: 5000, message: expect.stringContaining('rests after TikTok answered 429') });
      // Past what the caller allows it is still rate_limited, not retried.
      await expect(l.acquire('publish.init', 'tok', { deferLongWaits: true, maxWaitMs: 10_000 })).rejects.toMatchObject({ code: 'rate_limited' });
    });
  });

  it('sleeps a wait under a second, and any wait of a caller the core cannot defer', async () => {
    await onFakeClock(9_000_000, async () => {
      const l = new EndpointLimiter(limitsFrom(JSON.stringify({ 'publish.init': 1 })));
      (await l.acquire('publish.init', 'tok')).done();
      vi.setSystemTime(9_000_000 + 59_500);
      const short = l.acquire('publish.init', 'tok', { deferLongWaits: true });
      await vi.advanceTimersByTimeAsync(500);
      await expect(short).resolves.toMatchObject({ done: expect.any(Function) });
      const long = l.acquire('publish.init', 'tok');
      await vi.advanceTimersByTimeAsync(60_000);
      await expect(long).resolves.toMatchObject({ done: expect.any(Function) });
    });
  });

  it('refuses unknown endpoints in TIKTOK_RATE_LIMITS', () => {
    expect(() => limitsFrom('{"video.lists": 5}')).toThrow(/video.lists/);
  });
});

describe('TikTok API client', () => {
  it('a connection that breaks while the answer is read is a retryable vendor 503, not a failure coded TypeError', async () => {
    // Headers, the first bytes of the body, then the socket goes (a reset mid-answer).
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '4096' });
      res.write('{"data":{"user":', () => res.socket?.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    configureOutbound(parseAllowlist('127.0.0.1'));
    try {
      const api = createTikTokApi({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, clientKey: 'k', limiter: new EndpointLimiter(limitsFrom(undefined)) });
      const e = await api.call('user.info', { token: 'act.1' }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(VendorError);
      expect(e).toMatchObject({ status: 503, retryable: true });
    } finally {
      configureOutbound([]);
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

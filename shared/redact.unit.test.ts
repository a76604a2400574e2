import { afterEach, describe, expect, it, vi } from 'vitest';
import { forgetSecret, knownSecretCount, redactString, registerSecret, REDACTED } from './redact.ts';

describe('the masking list', () => {
  afterEach(() => vi.useRealTimers());

  it('stays bounded while tokens rotate for months, and keeps masking configured keys and live tokens', () => {
    vi.useFakeTimers({ now: 1_800_000_000_000 });
    registerSecret('configured-client-secret-1');
    const before = knownSecretCount();
    // 100,000 access tokens, each living 2 hours, one issued every 10 minutes (about 2 years of one connection, or a day of 700).
    let last = '';
    for (let i = 0; i < 100_000; i++) {
      last = `act.rotating-${i}`;
      registerSecret(last, { until: Date.now() + 7_200_000 });
      vi.advanceTimersByTime(600_000);
    }
    expect(knownSecretCount() - before).toBeLessThanOrEqual(13);
    expect(redactString(`Bearer ${last}`)).toBe(`Bearer ${REDACTED}`);
    expect(redactString('secret=configured-client-secret-1')).toBe(`secret=${REDACTED}`);
  });

  it('a token read again by code that knows nothing of its expiry keeps its end; a retired one can be forgotten', () => {
    vi.useFakeTimers({ now: 1_800_000_000_000 });
    registerSecret('rft.expiring-token', { until: Date.now() + 60_000 });
    registerSecret('rft.expiring-token'); // the secret store's read of the same value
    registerSecret('rft.retired-token', { until: Date.now() + 86_400_000 });
    forgetSecret('rft.retired-token');
    expect(redactString('rft.retired-token')).toBe('rft.retired-token');
    expect(redactString('rft.expiring-token')).toBe(REDACTED);
    vi.advanceTimersByTime(120_000);
    expect(redactString('rft.expiring-token')).toBe('rft.expiring-token');
  });
});

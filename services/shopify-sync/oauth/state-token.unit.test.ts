import { describe, expect, it } from 'vitest';
import { openState, sealState } from './state-token.ts';

describe('install state', () => {
  const secret = 'shpss_test_secret';
  const state = { workspaceId: 'acme', shop: 'acme.myshopify.com', expiresAt: Date.now() + 60_000 };

  it('round-trips, and two seals of one install differ (it doubles as the nonce)', () => {
    const raw = sealState(secret, state);
    expect(raw).not.toContain('acme');
    expect(openState(secret, raw)).toEqual({ ok: true, state });
    expect(sealState(secret, state)).not.toBe(raw);
  });

  it("refuses a tampered state, another app's, an expired one and none", () => {
    const raw = sealState(secret, state);
    const flipped = Buffer.from(raw, 'base64url');
    flipped[20]! ^= 1;
    expect(openState(secret, flipped.toString('base64url'))).toEqual({ ok: false, reason: 'invalid' });
    expect(openState('other-secret', raw)).toEqual({ ok: false, reason: 'invalid' });
    expect(openState(secret, sealState(secret, { ...state, expiresAt: Date.now() - 1 }))).toEqual({ ok: false, reason: 'expired' });
    expect(openState(secret, undefined)).toEqual({ ok: false, reason: 'missing' });
    expect(openState(secret, '%%%')).toEqual({ ok: false, reason: 'invalid' });
  });
});

import { describe, expect, it } from 'vitest';
import { openState, sealState } from './state-token.ts';

describe('OAuth state', () => {
  const secret = 'client-secret-abc';
  const state = { workspaceId: 'acme', verifier: 'v'.repeat(64), expiresAt: Date.now() + 60_000 };

  it('round-trips and hides the verifier', () => {
    const raw = sealState(secret, state);
    expect(raw).not.toContain('vvvv');
    expect(openState(secret, raw)).toEqual({ ok: true, state });
  });

  it('refuses a tampered state, another app\'s state, an expired one and none', () => {
    const raw = sealState(secret, state);
    const flipped = Buffer.from(raw, 'base64url');
    flipped[20]! ^= 1;
    expect(openState(secret, flipped.toString('base64url'))).toEqual({ ok: false, reason: 'invalid' });
    expect(openState('other-secret', raw)).toEqual({ ok: false, reason: 'invalid' });
    expect(openState(secret, sealState(secret, { ...state, expiresAt: Date.now() - 1 }))).toEqual({ ok: false, reason: 'expired' });
    expect(openState(secret, undefined)).toEqual({ ok: false, reason: 'missing' });
    expect(openState(secret, 'not-base64-at-all!')).toEqual({ ok: false, reason: 'invalid' });
  });
});

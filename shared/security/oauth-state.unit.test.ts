import { describe, expect, it } from 'vitest';
import { openState as openInstall, sealState as sealInstall } from '../../services/shopify-sync/oauth/state-token.ts';
import { openState as openConnect, sealState as sealConnect } from '../../services/tiktok-sync/oauth/state-token.ts';
import { oauthStateToken } from './oauth-state.ts';

describe('sealed OAuth state (Shopify install, TikTok connect)', () => {
  const secret = 'app-secret-abc';
  const install = { workspaceId: 'acme', shop: 'acme.myshopify.com', expiresAt: Date.now() + 60_000 };
  const connect = { workspaceId: 'acme', verifier: 'v'.repeat(64), expiresAt: Date.now() + 60_000 };

  it('round-trips, hides what it carries, and two seals of one state differ (it doubles as the nonce)', () => {
    const raw = sealInstall(secret, install);
    expect(raw).not.toContain('acme');
    expect(openInstall(secret, raw)).toEqual({ ok: true, state: install });
    expect(sealInstall(secret, install)).not.toBe(raw);
    const c = sealConnect(secret, connect);
    expect(c).not.toContain('vvvv');
    expect(openConnect(secret, c)).toEqual({ ok: true, state: connect });
  });

  it("refuses a tampered state, another app's, another service's, an expired one, a malformed one and none", () => {
    const raw = sealInstall(secret, install);
    const flipped = Buffer.from(raw, 'base64url');
    flipped[20]! ^= 1;
    expect(openInstall(secret, flipped.toString('base64url'))).toEqual({ ok: false, reason: 'invalid' });
    expect(openInstall('other-secret', raw)).toEqual({ ok: false, reason: 'invalid' });
    // Same secret, other service: its key is derived with another salt.
    expect(openConnect(secret, raw)).toEqual({ ok: false, reason: 'invalid' });
    expect(openInstall(secret, sealInstall(secret, { ...install, expiresAt: Date.now() - 1 }))).toEqual({ ok: false, reason: 'expired' });
    expect(openInstall(secret, undefined)).toEqual({ ok: false, reason: 'missing' });
    expect(openInstall(secret, '%%%')).toEqual({ ok: false, reason: 'invalid' });
    // Sealed with the right key but without a field the state needs.
    const partial = oauthStateToken<{ workspaceId: string; expiresAt: number }>('ionflux-shopify', { workspaceId: 'w' });
    expect(openInstall(secret, partial.seal(secret, { workspaceId: 'acme', expiresAt: Date.now() + 60_000 }))).toEqual({ ok: false, reason: 'invalid' });
  });
});

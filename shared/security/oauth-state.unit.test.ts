import { describe, expect, it } from 'vitest';
import { openState as openInstall, sealState as sealInstall } from '../../services/shopify-sync/oauth/state-token.ts';
import { openState as openConnect, sealState as sealConnect } from '../../services/tiktok-sync/oauth/state-token.ts';
import { browserBinding, oauthStateToken } from './oauth-state.ts';

describe('sealed OAuth state (Shopify install, TikTok connect)', () => {
  const secret = 'app-secret-abc';
  const install = { workspaceId: 'acme', shop: 'acme.myshopify.com', browser: 'digest-1', expiresAt: Date.now() + 60_000 };
  const connect = { workspaceId: 'acme', verifier: 'v'.repeat(64), browser: 'digest-2', expiresAt: Date.now() + 60_000 };

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

describe('browser binding of an OAuth flow', () => {
  const response = () => {
    const set: string[] = [];
    return { set, append: (field: string, value: string) => void (field === 'Set-Cookie' && set.push(value)) };
  };
  const binding = browserBinding('ionflux_test', '/test/callback', true);

  it('takes the callback only from the browser holding the nonce it set, and clears that cookie', () => {
    const begun = response();
    const digest = binding.begin(begun, 900_000);
    const [cookie] = begun.set;
    expect(cookie).toMatch(/^ionflux_test_[\w-]{16}=[\w-]{32}; Path=\/test\/callback; Max-Age=900; HttpOnly; SameSite=Lax; Secure$/);
    const sent = cookie!.split(';')[0]!;
    const back = response();
    expect(binding.check({ headers: { cookie: `other=1; ${sent}` } }, back, digest)).toBe(true);
    expect(back.set[0]).toMatch(/^ionflux_test_[\w-]{16}=; .*Max-Age=0/);
    // Another browser: no cookie, or the nonce of another flow under this flow's name.
    expect(binding.check({ headers: {} }, response(), digest)).toBe(false);
    const [name] = sent.split('=');
    expect(binding.check({ headers: { cookie: `${name}=${'x'.repeat(32)}` } }, response(), digest)).toBe(false);
    // Two flows begun in one browser keep their own cookies.
    const second = binding.begin(response(), 900_000);
    expect(second.slice(0, 16)).not.toBe(digest.slice(0, 16));
  });
});

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkConnectGrant, CONNECT_GRANT_TTL_MS, signConnectGrant } from './connect-grant.ts';
import { signRelease, verifyRelease } from '../commands/release.ts';

const key = randomBytes(32);
const want = { connector: 'shopify', workspace: 'acme' };

describe('connect grants', () => {
  it('holds for its connector and workspace until it expires', () => {
    const g = signConnectGrant(key, { ...want, expires_at: 1000 + CONNECT_GRANT_TTL_MS });
    expect(checkConnectGrant(key, g, want, 1000)).toEqual({ ok: true });
    expect(checkConnectGrant(key, g, want, 1001 + CONNECT_GRANT_TTL_MS)).toEqual({ ok: false, reason: 'expired' });
    expect(checkConnectGrant(key, g, { ...want, workspace: 'globex' }, 1000)).toEqual({ ok: false, reason: 'invalid' });
    expect(checkConnectGrant(key, g, { ...want, connector: 'tiktok' }, 1000)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('refuses a missing, forged or re-signed grant, and is never an approval release (nor a release a grant)', () => {
    expect(checkConnectGrant(key, undefined, want)).toEqual({ ok: false, reason: 'missing' });
    expect(checkConnectGrant(key, signConnectGrant(randomBytes(32), { ...want, expires_at: Date.now() + 1000 }), want)).toEqual({ ok: false, reason: 'invalid' });
    const [body] = signConnectGrant(key, { ...want, workspace: 'globex', expires_at: Date.now() + 1000 }).split('.');
    const [, sig] = signConnectGrant(key, { ...want, expires_at: Date.now() + 1000 }).split('.');
    expect(checkConnectGrant(key, `${body}.${sig}`, { ...want, workspace: 'globex' })).toEqual({ ok: false, reason: 'invalid' });
    for (const bad of ['a.b.c', '.', 'x', '%%%.%%%']) expect(checkConnectGrant(key, bad, want)).toEqual({ ok: false, reason: 'invalid' });
    // Same key, different labels: neither signature passes for the other.
    const release = signRelease(key, { approval_id: 'a', digest: 'd', decision: 'approved', decided_by: 'x', decided_at: 'now' });
    expect(checkConnectGrant(key, release, want)).toEqual({ ok: false, reason: 'invalid' });
    expect(verifyRelease(key, signConnectGrant(key, { ...want, expires_at: Date.now() + 1000 }))).toBeNull();
  });
});

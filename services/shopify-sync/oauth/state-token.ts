import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * The OAuth `state` of an install: workspace, shop and expiry, sealed with AES-256-GCM under a key
 * derived from the app's API secret. Sealed, so it cannot be forged, altered or moved to another
 * shop; self-contained, so any instance can finish an install another began; random (a fresh IV
 * each time), so it also serves as Shopify's nonce.
 */
export interface InstallState {
  workspaceId: string;
  shop: string;
  expiresAt: number;
}

const keyOf = (secret: string) => Buffer.from(hkdfSync('sha256', secret, 'ionflux-shopify', 'oauth-state-v1', 32));

export function sealState(secret: string, s: InstallState): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyOf(secret), iv);
  const body = Buffer.concat([cipher.update(JSON.stringify({ w: s.workspaceId, s: s.shop, e: s.expiresAt })), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

/** The state, or why it is refused (`invalid` covers tampered, foreign and malformed alike). */
export function openState(secret: string, raw: string | undefined, now = Date.now()): { ok: true; state: InstallState } | { ok: false; reason: 'missing' | 'invalid' | 'expired' } {
  if (!raw) return { ok: false, reason: 'missing' };
  try {
    const b = Buffer.from(raw, 'base64url');
    if (b.length < 12 + 16 + 2) return { ok: false, reason: 'invalid' };
    const decipher = createDecipheriv('aes-256-gcm', keyOf(secret), b.subarray(0, 12));
    decipher.setAuthTag(b.subarray(b.length - 16));
    const p = JSON.parse(Buffer.concat([decipher.update(b.subarray(12, b.length - 16)), decipher.final()]).toString()) as { w?: unknown; s?: unknown; e?: unknown };
    if (typeof p.w !== 'string' || typeof p.s !== 'string' || typeof p.e !== 'number') return { ok: false, reason: 'invalid' };
    if (p.e < now) return { ok: false, reason: 'expired' };
    return { ok: true, state: { workspaceId: p.w, shop: p.s, expiresAt: p.e } };
  } catch {
    return { ok: false, reason: 'invalid' };
  }
}

import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * The OAuth `state`: workspace, PKCE verifier and expiry, sealed with AES-256-GCM under a key
 * derived from the client secret. Sealed, so the verifier never travels in clear and the state
 * cannot be forged or altered; self-contained, so any instance can finish a connect another began.
 */
export interface ConnectState {
  workspaceId: string;
  verifier: string;
  expiresAt: number;
}

const keyOf = (clientSecret: string) => Buffer.from(hkdfSync('sha256', clientSecret, 'ionflux-tiktok', 'oauth-state-v1', 32));

export function sealState(clientSecret: string, s: ConnectState): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyOf(clientSecret), iv);
  const body = Buffer.concat([cipher.update(JSON.stringify({ w: s.workspaceId, v: s.verifier, e: s.expiresAt })), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

/** The state, or why it is refused (`invalid` covers tampered, foreign and malformed alike). */
export function openState(clientSecret: string, raw: string | undefined, now = Date.now()): { ok: true; state: ConnectState } | { ok: false; reason: 'missing' | 'invalid' | 'expired' } {
  if (!raw) return { ok: false, reason: 'missing' };
  try {
    const b = Buffer.from(raw, 'base64url');
    if (b.length < 12 + 16 + 2) return { ok: false, reason: 'invalid' };
    const decipher = createDecipheriv('aes-256-gcm', keyOf(clientSecret), b.subarray(0, 12));
    decipher.setAuthTag(b.subarray(b.length - 16));
    const json = Buffer.concat([decipher.update(b.subarray(12, b.length - 16)), decipher.final()]).toString();
    const p = JSON.parse(json) as { w?: unknown; v?: unknown; e?: unknown };
    if (typeof p.w !== 'string' || typeof p.v !== 'string' || typeof p.e !== 'number') return { ok: false, reason: 'invalid' };
    if (p.e < now) return { ok: false, reason: 'expired' };
    return { ok: true, state: { workspaceId: p.w, verifier: p.v, expiresAt: p.e } };
  } catch {
    return { ok: false, reason: 'invalid' };
  }
}

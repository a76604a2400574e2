import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/** What opening a state gives: the state, or why it is refused (`invalid` covers tampered, foreign and malformed alike). */
export type OpenedState<T> = { ok: true; state: T } | { ok: false; reason: 'missing' | 'invalid' | 'expired' };

/**
 * An OAuth `state` token: a few string fields and an expiry, sealed with AES-256-GCM under a key
 * derived (HKDF) from the app's secret and `salt`. Sealed, so it cannot be forged, altered or
 * read in transit; self-contained, so any instance can finish an authorization another began;
 * random (a fresh IV each time), so it also serves as a nonce. `fields` names each string field of
 * T by the short name it has in the token.
 */
export function oauthStateToken<T extends { expiresAt: number }>(salt: string, fields: { [K in Exclude<keyof T, 'expiresAt'>]: string }) {
  const keyOf = (secret: string) => Buffer.from(hkdfSync('sha256', secret, salt, 'oauth-state-v1', 32));
  const names = Object.entries(fields) as [keyof T & string, string][];
  return {
    seal(secret: string, s: T): string {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', keyOf(secret), iv);
      const plain = Object.fromEntries([...names.map(([prop, short]) => [short, s[prop]]), ['e', s.expiresAt]]);
      const body = Buffer.concat([cipher.update(JSON.stringify(plain)), cipher.final()]);
      return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
    },
    open(secret: string, raw: string | undefined, now = Date.now()): OpenedState<T> {
      if (!raw) return { ok: false, reason: 'missing' };
      try {
        const b = Buffer.from(raw, 'base64url');
        if (b.length < 12 + 16 + 2) return { ok: false, reason: 'invalid' };
        const decipher = createDecipheriv('aes-256-gcm', keyOf(secret), b.subarray(0, 12));
        decipher.setAuthTag(b.subarray(b.length - 16));
        const p = JSON.parse(Buffer.concat([decipher.update(b.subarray(12, b.length - 16)), decipher.final()]).toString()) as Record<string, unknown>;
        if (typeof p.e !== 'number' || names.some(([, short]) => typeof p[short] !== 'string')) return { ok: false, reason: 'invalid' };
        if (p.e < now) return { ok: false, reason: 'expired' };
        return { ok: true, state: { ...Object.fromEntries(names.map(([prop, short]) => [prop, p[short]])), expiresAt: p.e } as T };
      } catch {
        return { ok: false, reason: 'invalid' };
      }
    },
  };
}

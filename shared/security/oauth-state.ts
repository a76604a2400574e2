import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

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

/** The parts of a request and response a browser binding reads and writes (express's fit). */
interface CookieRequest {
  headers: { cookie?: string | undefined };
}
interface CookieResponse {
  append(field: string, value: string): unknown;
}

/**
 * Ties an OAuth flow to the browser that began it (RFC 9700 §4.7.1): where the flow begins, a
 * random nonce goes into an HttpOnly cookie and its digest into the sealed state; the callback is
 * taken only from a browser presenting that nonce. Without it, a state (with the PKCE verifier in
 * it) works in anyone's browser: whoever opened a connect link could hand the vendor's consent
 * page to someone else, and their account would be bound to the link's workspace. The cookie is
 * named after its digest, so flows begun side by side in one browser do not replace each other's.
 */
export function browserBinding(prefix: string, callbackPath: string, secure: boolean) {
  const nameOf = (digest: string) => `${prefix}_${digest.slice(0, 16)}`;
  const attributes = (maxAgeS: number) => `Path=${callbackPath}; Max-Age=${maxAgeS}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
  return {
    /** Sets the cookie; the digest goes into the state. */
    begin(res: CookieResponse, ttlMs: number): string {
      const nonce = randomBytes(24).toString('base64url');
      const digest = createHash('sha256').update(nonce).digest('base64url');
      res.append('Set-Cookie', `${nameOf(digest)}=${nonce}; ${attributes(Math.ceil(ttlMs / 1000))}`);
      return digest;
    },
    /** Whether the request carries the nonce of `digest`; the cookie is cleared either way. */
    check(req: CookieRequest, res: CookieResponse, digest: string): boolean {
      const name = nameOf(digest);
      res.append('Set-Cookie', `${name}=; ${attributes(0)}`);
      const nonce = (req.headers.cookie ?? '').split(';').map((c) => c.trim()).find((c) => c.startsWith(`${name}=`))?.slice(name.length + 1);
      if (!nonce) return false;
      const got = createHash('sha256').update(nonce).digest();
      const want = Buffer.from(digest, 'base64url');
      return got.length === want.length && timingSafeEqual(got, want);
    },
  };
}

import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { approvalKeyCache } from '../commands/release.ts';
import type { SecretStore } from '../secrets/index.ts';

/**
 * Connect links (GET /shopify/install, GET /tiktok/connect) bind whatever account the browser
 * authorizes to the workspace the link names, so they only begin for a link the hub issued: a
 * `grant` naming the connector, the workspace and an expiry, signed with the approval key (in the
 * secret store, readable by admins and workers, never by agents) under its own label, so a grant is
 * never mistaken for an approval release. `ionflux connect …` issues them for an admin; a worker
 * issues them in what it tells that workspace (a `not_connected` or `needs_reauthorization` failure,
 * TikTok's needs_reauthorization event).
 */
const grantSchema = z.object({ connector: z.string(), workspace: z.string(), expires_at: z.number() });
export type ConnectGrant = z.infer<typeof grantSchema>;

/** How long an issued link stays usable. */
export const CONNECT_GRANT_TTL_MS = 24 * 3600_000;

const mac = (key: Buffer, body: string) => createHmac('sha256', key).update(`ionflux-connect-grant\n${body}`).digest();

/** `<base64url JSON>.<base64url HMAC-SHA256>`. */
export function signConnectGrant(key: Buffer, g: ConnectGrant): string {
  const body = Buffer.from(JSON.stringify(g)).toString('base64url');
  return `${body}.${mac(key, body).toString('base64url')}`;
}

export type GrantCheck = { ok: true } | { ok: false; reason: 'missing' | 'invalid' | 'expired' };

/** Whether `token` is a grant signed with `key` for this connector and workspace, not expired at `now`. */
export function checkConnectGrant(key: Buffer, token: string | undefined, want: { connector: string; workspace: string }, now = Date.now()): GrantCheck {
  if (!token) return { ok: false, reason: 'missing' };
  const [body, sig, extra] = token.split('.');
  if (!body || !sig || extra !== undefined) return { ok: false, reason: 'invalid' };
  const given = Buffer.from(sig, 'base64url');
  const expected = mac(key, body);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'invalid' };
  let g: ConnectGrant;
  try {
    const parsed = grantSchema.safeParse(JSON.parse(Buffer.from(body, 'base64url').toString('utf8')));
    if (!parsed.success) return { ok: false, reason: 'invalid' };
    g = parsed.data;
  } catch {
    return { ok: false, reason: 'invalid' };
  }
  if (g.connector !== want.connector || g.workspace !== want.workspace) return { ok: false, reason: 'invalid' };
  return g.expires_at < now ? { ok: false, reason: 'expired' } : { ok: true };
}

export interface ConnectGrants {
  /** A grant for `workspace`, valid CONNECT_GRANT_TTL_MS. */
  issue(workspace: string): Promise<string>;
  check(token: string | undefined, workspace: string): Promise<GrantCheck>;
}

/**
 * Grants of one connector with the store's key: read once, and again when a grant does not verify
 * (the key may have been rotated), at most once a minute, so forged links cannot make a read each.
 */
export function connectGrants(store: SecretStore, connector: string, now: () => number = Date.now): ConnectGrants {
  const key = approvalKeyCache(store);
  let loadedAt = -Infinity; // when the key was last read again
  return {
    async issue(workspace) {
      return signConnectGrant(await key.get(), { connector, workspace, expires_at: now() + CONNECT_GRANT_TTL_MS });
    },
    async check(token, workspace) {
      const first = checkConnectGrant(await key.get(), token, { connector, workspace }, now());
      if (first.ok || first.reason !== 'invalid' || now() - loadedAt < 60_000) return first;
      loadedAt = now();
      return checkConnectGrant(await key.reload(), token, { connector, workspace }, now());
    },
  };
}

/** `url` with a grant for `workspace` appended; `instead` when no grant can be issued (the secret store unreachable). */
export async function grantedLink(grants: ConnectGrants, url: string, workspace: string, instead: string): Promise<string> {
  try {
    return `${url}&grant=${await grants.issue(workspace)}`;
  } catch {
    return instead;
  }
}

import { registerSecret } from '../redact.ts';
import { secretPaths, type SecretStore } from './store.ts';

/**
 * A workspace's OAuth tokens for a connector in the secret store, `workspaces/<ws>/connectors/<c>`:
 * `access_token` (the connector's credential field), `refresh_token`, and `meta`, one JSON string
 * with what the connector keeps beside them (account, scopes, expiry times, `issued_at`). One
 * write keeps them together; and since the store masks every value it holds in logs, keeping
 * the account and times inside `meta` leaves them readable there. Both tokens are registered
 * for redaction as soon as they are read or written.
 */
export interface OAuthTokens<M> {
  access_token: string;
  /** '' when the vendor gave none. */
  refresh_token: string;
  meta: Partial<M>;
}

export async function readOAuthTokens<M>(store: SecretStore, ws: string, connector: string): Promise<OAuthTokens<M> | null> {
  const v = (await store.get(secretPaths.workspace(ws, connector)))?.value;
  if (!v?.access_token || !v.meta) return null;
  registerSecret(v.access_token);
  if (v.refresh_token) registerSecret(v.refresh_token);
  return { access_token: v.access_token, refresh_token: v.refresh_token ?? '', meta: JSON.parse(v.meta) as Partial<M> };
}

/** Writes the tokens and their meta in one write; the secret expires with the refresh token when `expiresAt` is given. */
export async function writeOAuthTokens<M>(store: SecretStore, ws: string, connector: string, t: { access_token: string; refresh_token: string; meta: M; expiresAt?: number }): Promise<void> {
  registerSecret(t.access_token);
  if (t.refresh_token) registerSecret(t.refresh_token);
  await store.put(secretPaths.workspace(ws, connector), { access_token: t.access_token, refresh_token: t.refresh_token, meta: JSON.stringify(t.meta) }, {
    ...(t.expiresAt ? { expiresAt: new Date(t.expiresAt).toISOString() } : {}),
    labels: { workspace: ws, connector },
  });
}

/**
 * Stores tokens a refresh just issued. The vendor revoked the previous refresh token when it
 * issued them, so tokens not stored mean the user has to connect again: a write that fails (the
 * secret store briefly unreachable, a leader change) is tried again, waiting 0.25 s doubling to 8 s,
 * for up to `forMs`, and only then does the error go on.
 */
export async function storeRefreshed(write: () => Promise<void>, o: { forMs?: number; signal?: AbortSignal } = {}): Promise<void> {
  const until = Date.now() + (o.forMs ?? 60_000);
  for (let wait = 250; ; wait = Math.min(wait * 2, 8000)) {
    try {
      return await write();
    } catch (e) {
      if (Date.now() + wait > until || o.signal?.aborted) throw e;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

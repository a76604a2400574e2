import { readOAuthTokens, writeOAuthTokens } from '../../../shared/secrets/oauth-tokens.ts';
import { secretPaths, type SecretStore } from '../../../shared/secrets/index.ts';
import { registerTokens, type TokenSet } from '../api/oauth.ts';

/**
 * A workspace's TikTok tokens in the secret store, `workspaces/<ws>/connectors/tiktok`
 * (shared/secrets/oauth-tokens.ts): the tokens, and in `meta` open_id, scope, the expiry times and
 * `issued_at` (the generation, see state/connections.ts).
 */
export interface StoredTokens extends TokenSet {
  issued_at: number;
}

type Meta = Omit<StoredTokens, 'access_token' | 'refresh_token'>;

export const tokenPath = (ws: string) => secretPaths.workspace(ws, 'tiktok');

export async function readTokens(store: SecretStore, ws: string): Promise<StoredTokens | null> {
  const t = await readOAuthTokens<Meta>(store, ws, 'tiktok');
  // TikTok always issues a refresh token: without one the connection cannot go on.
  if (!t?.refresh_token || !t.meta.open_id) return null;
  const { meta } = t;
  const tokens: StoredTokens = {
    access_token: t.access_token,
    refresh_token: t.refresh_token,
    open_id: meta.open_id!,
    scope: meta.scope ?? [],
    issued_at: meta.issued_at ?? 0,
    access_expires_at: meta.access_expires_at ?? 0,
    refresh_expires_at: meta.refresh_expires_at ?? 0,
  };
  // Tokens stored before their expiry times were kept (none) stay masked for good.
  if (meta.access_expires_at && meta.refresh_expires_at) registerTokens(tokens);
  return tokens;
}

export async function writeTokens(store: SecretStore, ws: string, t: StoredTokens): Promise<void> {
  const { access_token, refresh_token, open_id, scope, issued_at, access_expires_at, refresh_expires_at } = t;
  await writeOAuthTokens<Meta>(store, ws, 'tiktok', { access_token, refresh_token, meta: { open_id, scope, issued_at, access_expires_at, refresh_expires_at }, expiresAt: refresh_expires_at });
}

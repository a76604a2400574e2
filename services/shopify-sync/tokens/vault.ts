import { readOAuthTokens, writeOAuthTokens } from '../../../shared/secrets/oauth-tokens.ts';
import { secretPaths, type SecretStore } from '../../../shared/secrets/index.ts';

/**
 * A workspace's Shopify offline token in the secret store, `workspaces/<ws>/connectors/shopify`
 * (shared/secrets/oauth-tokens.ts): the tokens, and in `meta` the shop, scopes, expiry times and
 * `issued_at` (the generation).
 */
export interface StoredToken {
  access_token: string;
  refresh_token: string;
  shop: string;
  scope: string[];
  issued_at: number;
  access_expires_at: number;
  refresh_expires_at: number;
}

type Meta = Omit<StoredToken, 'access_token' | 'refresh_token'>;

export const tokenPath = (ws: string) => secretPaths.workspace(ws, 'shopify');

export async function readToken(store: SecretStore, ws: string): Promise<StoredToken | null> {
  const t = await readOAuthTokens<Meta>(store, ws, 'shopify');
  if (!t?.meta.shop) return null;
  const { meta } = t;
  return {
    access_token: t.access_token,
    refresh_token: t.refresh_token,
    shop: meta.shop!,
    scope: meta.scope ?? [],
    issued_at: meta.issued_at ?? 0,
    access_expires_at: meta.access_expires_at ?? 0,
    refresh_expires_at: meta.refresh_expires_at ?? 0,
  };
}

export async function writeToken(store: SecretStore, ws: string, t: StoredToken): Promise<void> {
  const { access_token, refresh_token, ...meta } = t;
  await writeOAuthTokens<Meta>(store, ws, 'shopify', { access_token, refresh_token, meta, expiresAt: t.refresh_expires_at });
}

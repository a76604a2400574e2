import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { redactString } from '../redact.ts';
import { createFileSecretStore } from './file-store.ts';
import { readOAuthTokens, storeRefreshed, writeOAuthTokens } from './oauth-tokens.ts';

describe('OAuth tokens in the secret store', () => {
  let dir: string;
  beforeEach(async () => void (dir = await mkdtemp(join(tmpdir(), 'ionflux-oauth-tokens-'))));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('keeps the tokens and their meta together under the connector, labelled, expiring with the refresh token, and masks both tokens', async () => {
    const store = createFileSecretStore({ file: join(dir, 'secrets.enc'), keyFile: join(dir, 'secrets.key') });
    const expiresAt = Date.UTC(2027, 0, 1);
    await writeOAuthTokens(store, 'acme', 'tiktok', { access_token: 'act.unit-access-4f9a2c', refresh_token: 'rft.unit-refresh-8d1e7b', meta: { open_id: 'u-1', issued_at: 5 }, expiresAt });
    const raw = await store.get('workspaces/acme/connectors/tiktok');
    expect(raw!.value).toEqual({ access_token: 'act.unit-access-4f9a2c', refresh_token: 'rft.unit-refresh-8d1e7b', meta: '{"open_id":"u-1","issued_at":5}' });
    expect(raw!.metadata).toMatchObject({ expiresAt: new Date(expiresAt).toISOString(), labels: { workspace: 'acme', connector: 'tiktok' } });
    expect(await readOAuthTokens<{ open_id: string }>(store, 'acme', 'tiktok')).toEqual({ access_token: 'act.unit-access-4f9a2c', refresh_token: 'rft.unit-refresh-8d1e7b', meta: { open_id: 'u-1', issued_at: 5 } });
    expect(redactString('got act.unit-access-4f9a2c and rft.unit-refresh-8d1e7b')).not.toMatch(/unit-access|unit-refresh/);
    expect(await readOAuthTokens(store, 'acme', 'shopify')).toBeNull();
  });

  it('reads a token without a refresh token as an empty one, and nothing without meta', async () => {
    const store = createFileSecretStore({ file: join(dir, 'secrets.enc'), keyFile: join(dir, 'secrets.key') });
    await writeOAuthTokens(store, 'acme', 'shopify', { access_token: 'shpat_unit_0123456789', refresh_token: '', meta: { shop: 'acme.myshopify.com' } });
    expect(await readOAuthTokens(store, 'acme', 'shopify')).toMatchObject({ refresh_token: '', meta: { shop: 'acme.myshopify.com' } });
    expect((await store.get('workspaces/acme/connectors/shopify'))!.metadata?.expiresAt).toBeUndefined();
    await store.put('workspaces/acme/connectors/email', { access_token: 'x-unit-0123456789' });
    expect(await readOAuthTokens(store, 'acme', 'email')).toBeNull();
  });

  it('stores refreshed tokens through a secret store that fails for a moment, and gives up only after its time', async () => {
    const store = createFileSecretStore({ file: join(dir, 'secrets.enc'), keyFile: join(dir, 'secrets.key') });
    let failures = 2;
    const flaky = () => (failures-- > 0 ? Promise.reject(new Error('503 leader changing')) : writeOAuthTokens(store, 'acme', 'tiktok', { access_token: 'act.new-unit-1', refresh_token: 'rft.new-unit-1', meta: { open_id: 'u-1' } }));
    await storeRefreshed(flaky);
    expect((await readOAuthTokens(store, 'acme', 'tiktok'))?.refresh_token).toBe('rft.new-unit-1');
    let tries = 0;
    await expect(storeRefreshed(() => (tries++, Promise.reject(new Error('still down'))), { forMs: 600 })).rejects.toThrow('still down');
    expect(tries).toBe(2); // at once, after 0.25 s; the next wait (0.5 s) would pass 0.6 s
  });
});

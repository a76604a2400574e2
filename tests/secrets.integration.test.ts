import { afterAll, describe, expect, it } from 'vitest';
import { createSecretStore } from '../shared/secrets/index.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { infraEnv, uid } from './helpers/infra.ts';

const { vaultAddr, vaultToken } = infraEnv();

describe('Vault secret store against the real OpenBao (KV v2)', () => {
  const store = createVaultSecretStore({ addr: vaultAddr, token: vaultToken, mount: 'secret' });
  const prefix = uid('test-');
  afterAll(async () => {
    for (const name of await store.list(prefix)) await store.delete(`${prefix}/${name}`);
  });

  it('stores, reads, lists and deletes, with expiry and labels', async () => {
    expect(await store.get(`${prefix}/missing`)).toBeNull();
    await store.put(`${prefix}/openai`, { api_key: 'sk-vault-0123456789' }, { expiresAt: '2031-05-01T00:00:00.000Z', labels: { owner: 'platform' } });
    await store.put(`${prefix}/shopify`, { access_token: 'shpat_0123456789' });
    const got = await store.get(`${prefix}/openai`);
    expect(got!.value).toEqual({ api_key: 'sk-vault-0123456789' });
    expect(got!.metadata).toMatchObject({ expiresAt: '2031-05-01T00:00:00.000Z', labels: { owner: 'platform' } });
    expect(got!.metadata.createdAt).toMatch(/^\d{4}-/);
    expect(await store.list(prefix)).toEqual(['openai', 'shopify']);
    await store.delete(`${prefix}/openai`);
    await store.delete(`${prefix}/never-there`);
    expect(await store.get(`${prefix}/openai`)).toBeNull();
    expect(await store.list(prefix)).toEqual(['shopify']);
    expect((await store.health()).ok).toBe(true);
  });

  it('reports an unreachable Vault as degraded, fails reads with a retryable error, and never shows the token', async () => {
    const token = 'hvs.super-secret-token-value';
    const down = createVaultSecretStore({ addr: 'http://127.0.0.1:1', token, mount: 'secret', requestTimeoutMs: 1000 });
    const started = Date.now();
    const health = await down.health();
    expect(health.ok).toBe(false);
    expect(Date.now() - started).toBeLessThan(3000);
    const error = await down.get('platform/openai').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'secret_store_unavailable', retryable: true });
    expect(JSON.stringify(error) + String(error) + JSON.stringify(health)).not.toContain(token);
  });

  it('is chosen by createSecretStore when a token is configured, the file store otherwise', () => {
    const base = { VAULT_ADDR: vaultAddr, VAULT_KV_MOUNT: 'secret', SECRETS_FILE: '/tmp/x.enc', SECRETS_KEY_FILE: '/tmp/x.key' };
    expect(createSecretStore({ ...base, VAULT_TOKEN: vaultToken }).kind).toBe('vault');
    expect(createSecretStore({ ...base, VAULT_TOKEN: undefined }).kind).toBe('file');
  });
});

import { createServer, type Server } from 'node:http';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSecretStore } from '../shared/secrets/index.ts';
import type { SecretStore } from '../shared/secrets/store.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { infraEnv, uid } from './helpers/infra.ts';

const { vaultAddr, vaultToken } = infraEnv();

/** Deletes everything under `prefix`, depth first, so no test leaves entries in the shared Vault. */
async function purge(store: SecretStore, prefix: string): Promise<void> {
  for (const name of await store.list(prefix)) {
    if (name.endsWith('/')) await purge(store, `${prefix}/${name.slice(0, -1)}`);
    else await store.delete(`${prefix}/${name}`);
  }
}

/** Everything a log line, a crash report or a JSON dump could print about an error. */
const shown = (e: unknown) => `${String(e)} ${JSON.stringify(e)} ${inspect(e, { depth: 10 })}`;

describe('Vault secret store against the real OpenBao (KV v2)', () => {
  const store = createVaultSecretStore({ addr: vaultAddr, token: vaultToken, mount: 'secret' });
  let prefix: string;
  beforeEach(() => {
    prefix = uid('test-');
  });
  afterEach(async () => {
    await purge(store, prefix);
    expect(await store.list(prefix)).toEqual([]);
  });

  it('stores, reads, lists and deletes', async () => {
    expect(store.kind).toBe('vault');
    expect(await store.get(`${prefix}/missing`)).toBeNull();
    expect(await store.list(prefix)).toEqual([]);
    await store.put(`${prefix}/platform/openai`, { api_key: 'sk-vault-0123456789' });
    await store.put(`${prefix}/workspaces/acme/connectors/shopify`, { access_token: 'shpat_0123456789' });
    await store.put(`${prefix}/workspaces/acme/connectors/tiktok`, { access_token: 'tt-0123456789' });
    expect((await store.get(`${prefix}/platform/openai`))!.value).toEqual({ api_key: 'sk-vault-0123456789' });
    expect(await store.list(prefix)).toEqual(['platform/', 'workspaces/']);
    expect(await store.list(`${prefix}/workspaces/acme/`)).toEqual(['connectors/']);
    expect(await store.list(`${prefix}/workspaces/acme/connectors`)).toEqual(['shopify', 'tiktok']);
    await store.delete(`${prefix}/platform/openai`);
    await store.delete(`${prefix}/platform/never-there`);
    expect(await store.get(`${prefix}/platform/openai`)).toBeNull();
    expect(await store.list(prefix)).toEqual(['workspaces/']);
    expect(await store.health()).toEqual({ ok: true });
  });

  it('round-trips metadata: expiry and labels, createdAt kept across updates, dropped fields really go', async () => {
    const path = `${prefix}/oauth`;
    await store.put(path, { access_token: 'ya29.vault-token-1', refresh_token: '1//refresh-abcdef' }, { expiresAt: '2031-05-01T00:00:00.000Z', labels: { owner: 'platform' } });
    const first = (await store.get(path))!;
    expect(first.value).toEqual({ access_token: 'ya29.vault-token-1', refresh_token: '1//refresh-abcdef' });
    expect(first.metadata).toMatchObject({ expiresAt: '2031-05-01T00:00:00.000Z', labels: { owner: 'platform' } });
    expect(first.metadata.createdAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    await new Promise((r) => setTimeout(r, 5));
    await store.put(path, { access_token: 'ya29.vault-token-2' }, { labels: { owner: 'ops' } });
    const second = (await store.get(path))!;
    expect(second.value).toEqual({ access_token: 'ya29.vault-token-2' });
    expect(second.metadata.createdAt).toBe(first.metadata.createdAt);
    expect(second.metadata.updatedAt > first.metadata.updatedAt).toBe(true);
    expect(second.metadata.expiresAt).toBeUndefined();
    expect(second.metadata.labels).toEqual({ owner: 'ops' });
  });

  it('refuses invalid paths before calling Vault', async () => {
    for (const path of ['../x', 'a//b', 'Workspaces/X', 'platform/ünï', `${prefix}/..`, '']) {
      await expect(store.put(path, { a: 'b' })).rejects.toMatchObject({ code: 'invalid_secret_path' });
      await expect(store.get(path)).rejects.toMatchObject({ code: 'invalid_secret_path' });
    }
    await expect(store.list('../')).rejects.toMatchObject({ code: 'invalid_secret_path' });
  });

  it('reports a rejected token as unhealthy and fails reads with a retryable error naming no token', async () => {
    const token = 'hvs.not-a-real-token-0123456789';
    const bad = createVaultSecretStore({ addr: vaultAddr, token, mount: 'secret' });
    expect(await bad.health()).toMatchObject({ ok: false });
    const error = await bad.get(`${prefix}/x`).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'secret_store_unavailable', retryable: true });
    expect(shown(error)).not.toContain(token);
  });
});

describe('Vault secret store when Vault is unreachable or stuck', () => {
  const token = 'hvs.super-secret-token-value';

  it('reports a refused connection as degraded quickly, and fails reads retryably without showing the token', async () => {
    const down = createVaultSecretStore({ addr: 'http://127.0.0.1:1', token, mount: 'secret' });
    const started = Date.now();
    const health = await down.health();
    expect(health.ok).toBe(false);
    expect(Date.now() - started).toBeLessThan(3000);
    const error = await down.get('platform/openai').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'secret_store_unavailable', retryable: true });
    expect(shown(error) + JSON.stringify(health)).not.toContain(token);
  });

  describe('against a Vault that answers reads (404) but never answers health or writes', () => {
    let server: Server;
    let addr: string;
    beforeAll(async () => {
      server = createServer((req, res) => {
        if (req.method === 'GET' && !req.url?.includes('sys/health')) res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[]}');
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      addr = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });

    it('times out within the request timeout, and a failed write shows neither token nor value', async () => {
      const stuck = createVaultSecretStore({ addr, token, mount: 'secret', requestTimeoutMs: 300 });
      const started = Date.now();
      expect((await stuck.health()).ok).toBe(false);
      expect(await stuck.get('platform/openai')).toBeNull();
      const error = await stuck.put('platform/openai', { api_key: 'sk-PLAINTEXT-NEVER-SHOWN-42' }).catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(2000);
      expect(error).toMatchObject({ code: 'secret_store_unavailable', retryable: true, message: expect.stringContaining('write') });
      expect(shown(error)).not.toContain(token);
      expect(shown(error)).not.toContain('sk-PLAINTEXT-NEVER-SHOWN-42');
    });
  });
});

describe('createSecretStore', () => {
  it('picks Vault when a token is configured and the encrypted file otherwise', () => {
    const base = { VAULT_ADDR: vaultAddr, VAULT_KV_MOUNT: 'secret', SECRETS_FILE: '/tmp/ionflux-never-written.enc', SECRETS_KEY_FILE: '/tmp/ionflux-never-written.key' };
    expect(createSecretStore({ ...base, VAULT_TOKEN: vaultToken }).kind).toBe('vault');
    expect(createSecretStore({ ...base, VAULT_TOKEN: undefined }).kind).toBe('file');
  });
});

import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileSecretStore } from './file-store.ts';
import { secretPaths } from './store.ts';

describe('encrypted file secret store', () => {
  let dir: string;
  let file: string;
  let keyFile: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ionflux-secrets-'));
    file = join(dir, 'state', 'secrets.enc');
    keyFile = join(dir, 'state', 'secrets.key');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('stores, reads, lists and deletes, with metadata', async () => {
    const store = createFileSecretStore({ file, keyFile });
    expect(await store.get('platform/openai')).toBeNull();
    await store.put('platform/openai', { api_key: 'sk-platform-1234567890' });
    await store.put(secretPaths.workspace('acme', 'shopify'), { access_token: 'shpat_abcdef123456' }, { expiresAt: '2030-01-01T00:00:00.000Z', labels: { scopes: 'read_orders' } });
    expect((await store.get('platform/openai'))!.value).toEqual({ api_key: 'sk-platform-1234567890' });
    const ws = await store.get('workspaces/acme/connectors/shopify');
    expect(ws!.metadata).toMatchObject({ expiresAt: '2030-01-01T00:00:00.000Z', labels: { scopes: 'read_orders' } });
    expect(await store.list('')).toEqual(['platform/', 'workspaces/']);
    expect(await store.list('workspaces/acme/connectors')).toEqual(['shopify']);
    await store.delete('platform/openai');
    await store.delete('platform/never-there');
    expect(await store.get('platform/openai')).toBeNull();
    expect((await store.health()).ok).toBe(true);
  });

  it('keeps no plaintext on disk and makes the key file readable by its owner only', async () => {
    const store = createFileSecretStore({ file, keyFile });
    const secret = 'sk-live-THIS-MUST-NOT-LEAK-42';
    await store.put('platform/openai', { api_key: secret });
    const bytes = await readFile(file);
    expect(bytes.includes(Buffer.from(secret))).toBe(false);
    expect(bytes.includes(Buffer.from(Buffer.from(secret).toString('base64')))).toBe(false);
    expect(bytes.includes(Buffer.from('api_key'))).toBe(false);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('refuses a tampered file or a wrong key with secret_store_corrupt', async () => {
    const store = createFileSecretStore({ file, keyFile });
    await store.put('platform/openai', { api_key: 'sk-platform-1234567890' });
    const bytes = await readFile(file);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    await writeFile(file, bytes);
    await expect(store.get('platform/openai')).rejects.toMatchObject({ code: 'secret_store_corrupt' });
    expect((await store.health()).ok).toBe(false);

    const other = createFileSecretStore({ file: join(dir, 'b.enc'), keyFile });
    await other.put('platform/x', { k: 'value-123456' });
    await writeFile(keyFile, Buffer.alloc(32, 7));
    await expect(other.get('platform/x')).rejects.toMatchObject({ code: 'secret_store_corrupt' });
  });

  it('lets two stores on the same files (a service and the CLI) see each other\'s writes', async () => {
    const a = createFileSecretStore({ file, keyFile });
    const b = createFileSecretStore({ file, keyFile });
    await a.put('platform/tiktok', { secret: 'tiktok-secret-123' });
    expect((await b.get('platform/tiktok'))!.value.secret).toBe('tiktok-secret-123');
  });

  it.each(['../x', 'a//b', 'Workspaces/X', 'platform/ünï', '/abs', 'platform/..', ''])('refuses the path %j', async (path) => {
    const store = createFileSecretStore({ file, keyFile });
    await expect(store.put(path, { a: 'b' })).rejects.toMatchObject({ code: 'invalid_secret_path' });
  });
});

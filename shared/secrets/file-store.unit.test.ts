import { mkdtemp, readdir, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
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

  it('stores, reads, lists and deletes', async () => {
    const store = createFileSecretStore({ file, keyFile });
    expect(store.kind).toBe('file');
    expect(await store.get('platform/openai')).toBeNull();
    expect(await store.list('')).toEqual([]);
    await store.put(secretPaths.platform('openai'), { api_key: 'sk-platform-1234567890' });
    await store.put(secretPaths.workspace('acme', 'shopify'), { access_token: 'shpat_abcdef123456' });
    await store.put(secretPaths.workspace('acme', 'tiktok'), { access_token: 'tt-abcdef123456' });
    expect((await store.get('platform/openai'))!.value).toEqual({ api_key: 'sk-platform-1234567890' });
    expect(await store.list('')).toEqual(['platform/', 'workspaces/']);
    expect(await store.list('workspaces/')).toEqual(['acme/']);
    expect(await store.list(secretPaths.workspacePrefix('acme'))).toEqual(['connectors/']);
    expect(await store.list('workspaces/acme/connectors')).toEqual(['shopify', 'tiktok']);
    expect(await store.list('workspaces/nobody')).toEqual([]);
    await store.delete('platform/openai');
    await store.delete('platform/never-there');
    expect(await store.get('platform/openai')).toBeNull();
    expect(await store.list('')).toEqual(['workspaces/']);
    expect((await store.health()).ok).toBe(true);
  });

  it('round-trips metadata: expiry and labels, createdAt kept across updates, dropped fields really go', async () => {
    const store = createFileSecretStore({ file, keyFile });
    const path = secretPaths.workspace('acme', 'shopify');
    await store.put(path, { access_token: 'shpat_abcdef123456' }, { expiresAt: '2030-01-01T00:00:00.000Z', labels: { scopes: 'read_orders' } });
    const first = (await store.get(path))!;
    expect(first.metadata).toMatchObject({ expiresAt: '2030-01-01T00:00:00.000Z', labels: { scopes: 'read_orders' } });
    expect(first.metadata.createdAt).toBe(first.metadata.updatedAt);
    await new Promise((r) => setTimeout(r, 5));
    await store.put(path, { access_token: 'shpat_rotated_7890' });
    const second = (await store.get(path))!;
    expect(second.value.access_token).toBe('shpat_rotated_7890');
    expect(second.metadata.createdAt).toBe(first.metadata.createdAt);
    expect(second.metadata.updatedAt > first.metadata.updatedAt).toBe(true);
    expect(second.metadata.expiresAt).toBeUndefined();
    expect(second.metadata.labels).toBeUndefined();
  });

  it('keeps no plaintext on disk, no temp files behind, and owner-only modes', async () => {
    const store = createFileSecretStore({ file, keyFile });
    const secret = 'sk-live-THIS-MUST-NOT-LEAK-42';
    await store.put('platform/openai', { api_key: secret });
    const bytes = await readFile(file);
    expect(bytes.includes(Buffer.from(secret))).toBe(false);
    expect(bytes.includes(Buffer.from(Buffer.from(secret).toString('base64')))).toBe(false);
    expect(bytes.includes(Buffer.from('api_key'))).toBe(false);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'state'))).mode & 0o777).toBe(0o700);
    expect((await readFile(keyFile)).length).toBe(32);
    expect((await readdir(join(dir, 'state'))).sort()).toEqual(['secrets.enc', 'secrets.key']);
    // A fresh IV per write: the same content never encrypts to the same bytes.
    await store.put('platform/openai', { api_key: secret });
    expect((await readFile(file)).equals(bytes)).toBe(false);
  });

  it('refuses a tampered or truncated file with secret_store_corrupt, without plaintext or key in the error', async () => {
    const store = createFileSecretStore({ file, keyFile });
    await store.put('platform/openai', { api_key: 'sk-platform-1234567890' });
    const good = await readFile(file);
    const bytes = Buffer.from(good);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    await writeFile(file, bytes);
    const error = await store.get('platform/openai').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'secret_store_corrupt' });
    const shown = inspect(error, { depth: 10 });
    expect(shown).not.toContain('sk-platform-1234567890');
    expect(shown).not.toContain((await readFile(keyFile)).toString('hex'));
    expect((await store.health()).ok).toBe(false);
    await expect(store.put('platform/other', { k: 'v' })).rejects.toMatchObject({ code: 'secret_store_corrupt' });

    await writeFile(file, good);
    await truncate(file, 20);
    await expect(store.get('platform/openai')).rejects.toMatchObject({ code: 'secret_store_corrupt' });
  });

  it('refuses a wrong key, and a missing key for an existing file, without minting a new key', async () => {
    const store = createFileSecretStore({ file, keyFile });
    await store.put('platform/x', { k: 'value-123456' });
    await writeFile(keyFile, Buffer.alloc(32, 7));
    await expect(store.get('platform/x')).rejects.toMatchObject({ code: 'secret_store_corrupt' });

    await unlink(keyFile);
    await expect(store.get('platform/x')).rejects.toMatchObject({ code: 'secret_store_corrupt', message: expect.stringContaining('missing') });
    await expect(store.put('platform/y', { k: 'v' })).rejects.toMatchObject({ code: 'secret_store_corrupt' });
    await expect(stat(keyFile)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it("lets two stores on the same files (a service and the CLI) see each other's writes", async () => {
    const a = createFileSecretStore({ file, keyFile });
    const b = createFileSecretStore({ file, keyFile });
    await a.put('platform/tiktok', { secret: 'tiktok-secret-123' });
    expect((await b.get('platform/tiktok'))!.value.secret).toBe('tiktok-secret-123');
    await b.put('platform/shopify', { secret: 'shopify-secret-123' });
    expect(await a.list('platform')).toEqual(['shopify', 'tiktok']);
    await b.delete('platform/tiktok');
    expect(await a.get('platform/tiktok')).toBeNull();
  });

  it('serializes concurrent writes within one process, so none is lost', async () => {
    const store = createFileSecretStore({ file, keyFile });
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.put(`platform/p${i}`, { k: `value-${i}-abcdef` })));
    expect(await store.list('platform')).toHaveLength(20);
  });

  it.each(['../x', 'a//b', 'Workspaces/X', 'platform/ünï', '/abs', 'platform/..', 'platform/./x', 'a/b/', 'a b', ''])('refuses the path %j', async (path) => {
    const store = createFileSecretStore({ file, keyFile });
    await expect(store.put(path, { a: 'b' })).rejects.toMatchObject({ code: 'invalid_secret_path' });
    await expect(store.get(path)).rejects.toMatchObject({ code: 'invalid_secret_path' });
    await expect(store.delete(path)).rejects.toMatchObject({ code: 'invalid_secret_path' });
  });

  it.each(['../', 'a//', 'Workspaces/', '//'])('refuses the list prefix %j', async (prefix) => {
    await expect(createFileSecretStore({ file, keyFile }).list(prefix)).rejects.toMatchObject({ code: 'invalid_secret_path' });
  });
  it('keeps every update when two processes write the same file at once (a lock file around each read-modify-write)', async () => {
    // Two stores on one file: as the CLI and a service share it, each serializing only its own writes.
    const a = createFileSecretStore({ file, keyFile });
    const b = createFileSecretStore({ file, keyFile });
    await a.put(secretPaths.platform('first'), { k: 'v' }); // one key, made before the race
    const puts = (s: typeof a, name: string) => Array.from({ length: 20 }, (_, i) => s.put(secretPaths.workspace(`${name}${i}`, 'webhook'), { signing_secret: `secret-${name}-${i}` }));
    await Promise.all([...puts(a, 'a'), ...puts(b, 'b')]);
    const all = [...(await a.list('workspaces/'))];
    expect(all).toHaveLength(40);
    expect((await readdir(join(dir, 'state'))).sort()).toEqual(['secrets.enc', 'secrets.key']);
  });

  it('takes over a lock whose process is gone', async () => {
    const store = createFileSecretStore({ file, keyFile });
    await store.put(secretPaths.platform('first'), { k: 'v' });
    // A pid no process has (beyond Linux's pid_max), on this host: its holder died mid-write.
    await writeFile(`${file}.lock`, `${2 ** 23} ${hostname()} abc`);
    await store.put(secretPaths.platform('second'), { k: 'w' });
    expect(await store.list('platform/')).toEqual(['first', 'second']);
    expect((await readdir(join(dir, 'state'))).sort()).toEqual(['secrets.enc', 'secrets.key']);
  });
});

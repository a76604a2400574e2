import { mkdtemp, readdir, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createArtifactStore } from './artifacts.ts';

describe('artifact URLs: bound to a workspace, expiring', () => {
  const dirs: string[] = [];
  const store = async (o: { urlTtlMs?: number; signingKey?: string } = {}) => {
    const dir = await mkdtemp(join(tmpdir(), 'artifacts-'));
    dirs.push(dir);
    return createArtifactStore({ dir, baseUrl: 'http://127.0.0.1:8091/', urlTtlMs: o.urlTtlMs ?? 3600_000, signingKey: o.signingKey });
  };
  afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
  const parts = (url: string) => {
    const u = new URL(url);
    return { name: u.pathname.split('/').pop()!, q: Object.fromEntries(u.searchParams) };
  };

  it("opens for the workspace it was minted for, not for another, not tampered, not without a signature", async () => {
    const s = await store();
    const ref = await s.put(Buffer.from('png bytes'), 'image/png', 'acme');
    expect(ref.url).toMatch(/^http:\/\/127\.0\.0\.1:8091\/artifacts\/[a-f0-9]{64}\.png\?ws=acme&exp=\d+&sig=[A-Za-z0-9_-]{43}$/);
    const { name, q } = parts(ref.url);
    expect(await s.check(name, q)).toBeNull();
    expect(await s.check(name, { ...q, ws: 'other' })).toBe('invalid_signature');
    expect(await s.check(name, { ...q, exp: String(Number(q.exp) + 1) })).toBe('invalid_signature');
    expect(await s.check(name.replace(/^./, (c) => (c === 'a' ? 'b' : 'a')), q)).toBe('invalid_signature');
    expect(await s.check(name, {})).toBe('invalid_signature');
    expect(await s.check(name, { ...q, sig: 'x' })).toBe('invalid_signature');
    // The same bytes for another workspace: one file, its own URL.
    const other = await s.put(Buffer.from('png bytes'), 'image/png', 'beta');
    expect(other.sha256).toBe(ref.sha256);
    expect(await s.check(name, parts(other.url).q)).toBeNull();
    expect(parts(other.url).q.sig).not.toBe(q.sig);
  });

  it('expires with the artifact', async () => {
    const s = await store({ urlTtlMs: 60_000 });
    const { name, q } = parts((await s.put(Buffer.from('{}'), 'application/json', 'acme')).url);
    expect(await s.check(name, q, Date.now() + 30_000)).toBeNull();
    expect(await s.check(name, q, Date.now() + 120_000)).toBe('expired');
  });

  it('keeps one key per directory (instances sharing it verify each other\'s URLs), or the configured one; the sweep never removes it', async () => {
    const a = await store();
    const { name, q } = parts((await a.put(Buffer.from('x'), 'image/png', 'acme')).url);
    const b = createArtifactStore({ dir: a.dir, baseUrl: 'http://elsewhere', urlTtlMs: 3600_000 });
    expect(await b.check(name, q)).toBeNull();
    const configured = createArtifactStore({ dir: a.dir, baseUrl: 'http://x', urlTtlMs: 3600_000, signingKey: 'k'.repeat(32) });
    expect(await configured.check(name, q)).toBe('invalid_signature');
    const keyFile = join(a.dir, '.url-signing-key');
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const old = new Date(Date.now() - 10 * 86400_000);
    await utimes(keyFile, old, old);
    await utimes(join(a.dir, name), old, old);
    expect(await a.sweep(86400_000)).toBe(1);
    expect(await readdir(a.dir)).toEqual(['.url-signing-key']);
  });
});

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HubError } from '../errors.ts';
import { registerSecret } from '../redact.ts';
import { assertSecretPath, type SecretRecord, type SecretStore } from './store.ts';

type Entries = Record<string, SecretRecord>;
const MAGIC = Buffer.from('IFX1');

/**
 * Single-machine store: all entries in one file, AES-256-GCM with a fresh IV per write and the
 * 32-byte key in a 0600 key file. The file is re-read on every call (the CLI and services share
 * it) and replaced atomically.
 */
export function createFileSecretStore(opts: { file: string; keyFile: string }): SecretStore {
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = chain.then(fn, fn);
    chain = next.catch(() => undefined);
    return next;
  };

  async function key(): Promise<Buffer> {
    try {
      const k = await readFile(opts.keyFile);
      if (k.length !== 32) throw new HubError('secret_store_corrupt', `key file ${opts.keyFile} is not 32 bytes`);
      return k;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      await mkdir(dirname(opts.keyFile), { recursive: true, mode: 0o700 });
      const k = randomBytes(32);
      await writeFile(opts.keyFile, k, { mode: 0o600, flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err; // another process made it first: use theirs
      });
      return readFile(opts.keyFile);
    }
  }

  async function load(): Promise<Entries> {
    let bytes: Buffer;
    try {
      bytes = await readFile(opts.file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new HubError('secret_store_unavailable', `cannot read ${opts.file}`, { retryable: true, cause: e });
    }
    try {
      if (!bytes.subarray(0, 4).equals(MAGIC)) throw new Error('bad header');
      const iv = bytes.subarray(4, 16);
      const tag = bytes.subarray(16, 32);
      const decipher = createDecipheriv('aes-256-gcm', await key(), iv);
      decipher.setAuthTag(tag);
      const plain = Buffer.concat([decipher.update(bytes.subarray(32)), decipher.final()]);
      const entries = JSON.parse(plain.toString('utf8')) as Entries;
      for (const r of Object.values(entries)) for (const v of Object.values(r.value)) registerSecret(v);
      return entries;
    } catch (e) {
      if (e instanceof HubError) throw e;
      throw new HubError('secret_store_corrupt', `${opts.file} cannot be decrypted with ${opts.keyFile} (wrong key or tampered file)`);
    }
  }

  async function save(entries: Entries): Promise<void> {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', await key(), iv);
    const body = Buffer.concat([cipher.update(JSON.stringify(entries), 'utf8'), cipher.final()]);
    // Layout: magic(4) iv(12) tag(16) ciphertext.
    await mkdir(dirname(opts.file), { recursive: true, mode: 0o700 });
    const tmp = `${opts.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, Buffer.concat([MAGIC, iv, cipher.getAuthTag(), body]), { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, opts.file);
  }

  return {
    kind: 'file',
    async get(path) {
      assertSecretPath(path);
      return (await load())[path] ?? null;
    },
    async put(path, value, o = {}) {
      assertSecretPath(path);
      for (const v of Object.values(value)) registerSecret(v);
      return serial(async () => {
        const entries = await load();
        const now = new Date().toISOString();
        entries[path] = { value, metadata: { createdAt: entries[path]?.metadata.createdAt ?? now, updatedAt: now, expiresAt: o.expiresAt, labels: o.labels } };
        await save(entries);
      });
    },
    async list(prefix) {
      assertSecretPath(prefix, { prefix: true });
      const base = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
      const children = new Set<string>();
      for (const p of Object.keys(await load())) {
        if (!p.startsWith(base)) continue;
        const rest = p.slice(base.length);
        const slash = rest.indexOf('/');
        children.add(slash === -1 ? rest : `${rest.slice(0, slash)}/`);
      }
      return [...children].sort();
    },
    async delete(path) {
      assertSecretPath(path);
      return serial(async () => {
        const entries = await load();
        if (!(path in entries)) return;
        delete entries[path];
        await save(entries);
      });
    },
    async health() {
      try {
        await load();
        return { ok: true };
      } catch (e) {
        return { ok: false, detail: (e as Error).message };
      }
    },
  };
}

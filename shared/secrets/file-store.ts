import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { HubError } from '../errors.ts';
import { registerSecret } from '../redact.ts';
import { assertSecretPath, unavailable, type SecretRecord, type SecretStore } from './store.ts';

type Entries = Record<string, SecretRecord>;
// Layout on disk: magic(4) iv(12) tag(16) ciphertext. The magic lets us tell "not ours" from "tampered".
const MAGIC = Buffer.from('IFX1');
const HEADER = 4 + 12 + 16;

const errno = (e: unknown) => (e as NodeJS.ErrnoException | null)?.code;

/** Writes `bytes` to a fresh temp file (0600, fsynced) and renames it over `file`, so readers never see half a file. */
async function writeAtomic(file: string, bytes: Buffer, flag: 'rename' | 'link'): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    // link() refuses to replace an existing file, which is what key creation needs.
    if (flag === 'link') await link(tmp, file).catch((e: unknown) => { if (errno(e) !== 'EEXIST') throw e; });
    else await rename(tmp, file);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** How long a writer waits for another process's lock, and the age past which a lock counts as abandoned. */
const LOCK_WAIT_MS = 10_000;
const LOCK_STALE_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a lock's holder (`<pid> <host> <nonce>`) is gone: a process of this host that no longer runs, or a lock left far longer than any write takes. */
async function abandoned(lockFile: string, holder: string): Promise<boolean> {
  const [pid, host] = holder.split(' ');
  if (host === hostname() && Number(pid) > 0) {
    try {
      process.kill(Number(pid), 0);
    } catch (e) {
      if (errno(e) === 'ESRCH') return true;
    }
  }
  const at = await stat(lockFile).then((s) => s.mtimeMs, () => undefined);
  return at !== undefined && Date.now() - at > LOCK_STALE_MS;
}

/**
 * Runs `fn` holding `<file>.lock` (created exclusively), so the CLI and the services sharing one
 * file (without VAULT_TOKEN) never write over each other's updates: each read-modify-write sees
 * the last one. A lock whose holder died is taken over; another is waited for, LOCK_WAIT_MS at most.
 */
async function withFileLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lockFile = `${file}.lock`;
  const me = `${process.pid} ${hostname()} ${randomBytes(6).toString('hex')}`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(lockFile, 'wx', 0o600);
      try {
        await fh.writeFile(me);
      } finally {
        await fh.close();
      }
      break;
    } catch (e) {
      if (errno(e) === 'ENOENT') {
        await mkdir(dirname(file), { recursive: true, mode: 0o700 }).catch((err: unknown) => Promise.reject(unavailable(`cannot create ${dirname(file)}`, err)));
        continue;
      }
      if (errno(e) !== 'EEXIST') throw unavailable(`cannot create lock ${lockFile}`, e);
    }
    const holder = await readFile(lockFile, 'utf8').catch(() => undefined);
    if (holder !== undefined && (await abandoned(lockFile, holder))) {
      // Moved aside first: of two processes taking over the same dead lock, only one removes it,
      // and a fresh lock taken meanwhile by a third is put back.
      const aside = `${lockFile}.${randomBytes(4).toString('hex')}.stale`;
      if (await rename(lockFile, aside).then(() => true, () => false)) {
        const moved = await readFile(aside, 'utf8').catch(() => undefined);
        if (moved !== holder) await link(aside, lockFile).catch(() => undefined);
        await unlink(aside).catch(() => undefined);
      }
      continue;
    }
    if (Date.now() > deadline) throw unavailable(`${lockFile} is held by another process (${holder?.split(' ').slice(0, 2).join(' on ') ?? 'unknown'}) for more than ${LOCK_WAIT_MS / 1000} s`, undefined);
    await sleep(Math.min(100, 2 ** attempt) + Math.random() * 5);
  }
  try {
    return await fn();
  } finally {
    // Only our own lock: one taken over as abandoned belongs to its new holder.
    if ((await readFile(lockFile, 'utf8').catch(() => undefined)) === me) await unlink(lockFile).catch(() => undefined);
  }
}

/**
 * Single-machine store: all entries in one file, AES-256-GCM with a fresh IV per write and the
 * 32-byte key in a 0600 key file. The file is re-read on every call (the CLI and services share
 * it), writes are serialized within the process and hold a lock file across processes, and the
 * file is replaced atomically.
 */
export function createFileSecretStore(opts: { file: string; keyFile: string }): SecretStore {
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const locked = () => withFileLock(opts.file, fn);
    const next = chain.then(locked, locked);
    chain = next.catch(() => undefined);
    return next;
  };

  /** The key; created only when asked and no data file exists yet (a new key could never open old data). */
  async function key(create: boolean): Promise<Buffer> {
    let k: Buffer;
    try {
      k = await readFile(opts.keyFile);
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw unavailable(`cannot read key file ${opts.keyFile}`, e);
      if (!create) throw new HubError('secret_store_corrupt', `key file ${opts.keyFile} is missing but ${opts.file} exists; restore the key`);
      try {
        await writeAtomic(opts.keyFile, randomBytes(32), 'link'); // if another process won the race, theirs is kept
      } catch (err) {
        throw unavailable(`cannot create key file ${opts.keyFile}`, err);
      }
      return key(false);
    }
    if (k.length !== 32) throw new HubError('secret_store_corrupt', `key file ${opts.keyFile} is not 32 bytes`);
    return k;
  }

  async function load(): Promise<Entries> {
    let bytes: Buffer;
    try {
      bytes = await readFile(opts.file);
    } catch (e) {
      if (errno(e) === 'ENOENT') return {};
      throw unavailable(`cannot read ${opts.file}`, e);
    }
    const k = await key(false);
    let entries: unknown;
    try {
      if (bytes.length < HEADER || !bytes.subarray(0, 4).equals(MAGIC)) throw new Error('bad header');
      // Pinning the tag length stops a truncated file from being checked against a shorter, forgeable tag.
      const decipher = createDecipheriv('aes-256-gcm', k, bytes.subarray(4, 16), { authTagLength: 16 });
      decipher.setAuthTag(bytes.subarray(16, HEADER));
      const plain = Buffer.concat([decipher.update(bytes.subarray(HEADER)), decipher.final()]);
      entries = JSON.parse(plain.toString('utf8'));
    } catch {
      // No cause attached: it could hold decrypted bytes.
      throw new HubError('secret_store_corrupt', `${opts.file} cannot be decrypted with ${opts.keyFile} (wrong key or tampered file)`);
    }
    if (!entries || typeof entries !== 'object' || Array.isArray(entries)) throw new HubError('secret_store_corrupt', `${opts.file} does not hold a secret map`);
    for (const r of Object.values(entries as Entries)) for (const v of Object.values(r?.value ?? {})) registerSecret(v);
    return entries as Entries;
  }

  async function save(entries: Entries): Promise<void> {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', await key(true), iv);
    const body = Buffer.concat([cipher.update(JSON.stringify(entries), 'utf8'), cipher.final()]);
    try {
      await writeAtomic(opts.file, Buffer.concat([MAGIC, iv, cipher.getAuthTag(), body]), 'rename');
    } catch (e) {
      throw unavailable(`cannot write ${opts.file}`, e);
    }
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
        const createdAt = entries[path]?.metadata.createdAt ?? now;
        entries[path] = { value: { ...value }, metadata: { createdAt, updatedAt: now, ...(o.expiresAt ? { expiresAt: o.expiresAt } : {}), ...(o.labels ? { labels: { ...o.labels } } : {}) } };
        await save(entries);
      });
    },
    async create(path, value) {
      assertSecretPath(path);
      for (const v of Object.values(value)) registerSecret(v);
      return serial(async () => {
        const entries = await load();
        if (entries[path]) return false;
        const now = new Date().toISOString();
        entries[path] = { value: { ...value }, metadata: { createdAt: now, updatedAt: now } };
        await save(entries);
        return true;
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

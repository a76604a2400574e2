import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface StoredRef {
  url: string;
  sha256: string;
  bytes: number;
  content_type: string;
}

const EXT: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'application/json': 'json' };
export const ARTIFACT_NAME = /^[a-f0-9]{64}\.(png|jpg|webp|json|bin)$/;
/** Where the URL-signing key is kept when none is configured: beside the artifacts it guards. */
const KEY_FILE = '.url-signing-key';

/** Why a request for an artifact is refused, or null when its URL is valid. */
export type UrlProblem = 'invalid_signature' | 'expired' | null;

/**
 * Blobs too big for a Kafka record (generated images, oversized responses), stored on disk under
 * their sha256 and served by the orchestrator at `<baseUrl>/artifacts/<sha256>.<ext>`; records
 * carry only the reference. Point `dir` at shared storage when several instances run.
 *
 * Each URL handed out is bound to the workspace whose command produced it and expires with the
 * artifact: `?ws=<workspace>&exp=<unix seconds>&sig=<HMAC-SHA256 of "<ws>\n<name>\n<exp>">`. The
 * same bytes produced for two workspaces are one file with two URLs; neither URL opens the file
 * as the other workspace, and a name without a valid signature opens nothing. The key is
 * `signingKey` (LLM_ARTIFACTS_SIGNING_KEY) or a random one kept in `dir` (mode 0600): whoever can
 * read that directory can read the artifacts anyway.
 */
export function createArtifactStore(o: { dir: string; baseUrl: string; urlTtlMs: number; signingKey?: string }) {
  const ready = mkdir(o.dir, { recursive: true, mode: 0o700 });
  const key = ready.then(() => (o.signingKey ? Buffer.from(o.signingKey) : loadOrCreateKey(join(o.dir, KEY_FILE))));
  const mac = (k: Buffer, ws: string, name: string, exp: number) => createHmac('sha256', k).update(`${ws}\n${name}\n${exp}`).digest();
  return {
    dir: o.dir,
    async put(bytes: Buffer, contentType: string, workspaceId: string): Promise<StoredRef> {
      await ready;
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const name = `${sha256}.${EXT[contentType] ?? 'bin'}`;
      const file = join(o.dir, name);
      const exists = await stat(file).then(() => true, () => false);
      if (!exists) {
        const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
        await writeFile(tmp, bytes, { mode: 0o600 });
        await rename(tmp, file);
      } else {
        // Kept as long as the newest URL to it lives (the sweep goes by modification time).
        const now = new Date();
        await utimes(file, now, now).catch(() => undefined);
      }
      const exp = Math.floor((Date.now() + o.urlTtlMs) / 1000);
      const sig = mac(await key, workspaceId, name, exp).toString('base64url');
      const query = new URLSearchParams({ ws: workspaceId, exp: String(exp), sig });
      return { url: `${o.baseUrl.replace(/\/$/, '')}/artifacts/${name}?${query}`, sha256, bytes: bytes.length, content_type: contentType };
    },
    /** Checks a request's `ws`, `exp` and `sig` for `name`. */
    async check(name: string, q: { ws?: unknown; exp?: unknown; sig?: unknown }, now = Date.now()): Promise<UrlProblem> {
      const [ws, exp, sig] = [q.ws, q.exp, q.sig].map((v) => (typeof v === 'string' ? v : ''));
      if (!ws || !/^\d{1,12}$/.test(exp!) || !/^[A-Za-z0-9_-]{43}$/.test(sig!)) return 'invalid_signature';
      const expected = mac(await key, ws!, name, Number(exp));
      if (!timingSafeEqual(expected, Buffer.from(sig!, 'base64url'))) return 'invalid_signature';
      return Number(exp) * 1000 < now ? 'expired' : null;
    },
    /** Removes artifacts older than `maxAgeMs`; returns how many. */
    async sweep(maxAgeMs: number, now = Date.now()): Promise<number> {
      await ready;
      let removed = 0;
      for (const name of await readdir(o.dir)) {
        if (!ARTIFACT_NAME.test(name) && !name.endsWith('.tmp')) continue; // the key file stays
        const file = join(o.dir, name);
        const s = await stat(file).catch(() => null);
        if (s && now - s.mtimeMs > maxAgeMs) removed += await rm(file, { force: true }).then(() => 1, () => 0);
      }
      return removed;
    },
  };
}
export type ArtifactStore = ReturnType<typeof createArtifactStore>;

/** The key in `file`, created once (exclusive create: concurrent instances end up with the same one). */
async function loadOrCreateKey(file: string): Promise<Buffer> {
  const fresh = randomBytes(32);
  await writeFile(file, fresh.toString('base64'), { mode: 0o600, flag: 'wx' }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  const key = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
  if (key.length < 32) throw new Error(`${file} holds no usable key`);
  return key;
}

/** The content type of an image from its first bytes (providers' b64_json carries none). */
export function sniffImageType(b: Buffer): string {
  if (b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (b[0] === 0xff && b[1] === 0xd8) return 'image/jpeg';
  if (b.toString('ascii', 0, 4) === 'RIFF' && b.toString('ascii', 8, 12) === 'WEBP') return 'image/webp';
  return 'application/octet-stream';
}

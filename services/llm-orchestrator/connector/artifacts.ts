import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface StoredRef {
  url: string;
  sha256: string;
  bytes: number;
  content_type: string;
}

const EXT: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'application/json': 'json' };
export const ARTIFACT_NAME = /^[a-f0-9]{64}\.(png|jpg|webp|json|bin)$/;

/**
 * Blobs too big for a Kafka record (generated images, oversized responses), stored on disk under
 * their sha256 and served by the orchestrator at `<baseUrl>/artifacts/<sha256>.<ext>`; records
 * carry only the reference. Point `dir` at shared storage when several instances run.
 */
export function createArtifactStore(o: { dir: string; baseUrl: string }) {
  const ready = mkdir(o.dir, { recursive: true, mode: 0o700 });
  return {
    dir: o.dir,
    async put(bytes: Buffer, contentType: string): Promise<StoredRef> {
      await ready;
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const name = `${sha256}.${EXT[contentType] ?? 'bin'}`;
      const file = join(o.dir, name);
      const exists = await stat(file).then(() => true, () => false);
      if (!exists) {
        const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
        await writeFile(tmp, bytes, { mode: 0o600 });
        await rename(tmp, file);
      }
      return { url: `${o.baseUrl.replace(/\/$/, '')}/artifacts/${name}`, sha256, bytes: bytes.length, content_type: contentType };
    },
    /** Removes artifacts older than `maxAgeMs`; returns how many. */
    async sweep(maxAgeMs: number, now = Date.now()): Promise<number> {
      await ready;
      let removed = 0;
      for (const name of await readdir(o.dir)) {
        const file = join(o.dir, name);
        const s = await stat(file).catch(() => null);
        if (s && now - s.mtimeMs > maxAgeMs) removed += await rm(file, { force: true }).then(() => 1, () => 0);
      }
      return removed;
    },
  };
}
export type ArtifactStore = ReturnType<typeof createArtifactStore>;

/** The content type of an image from its first bytes (providers' b64_json carries none). */
export function sniffImageType(b: Buffer): string {
  if (b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (b[0] === 0xff && b[1] === 0xd8) return 'image/jpeg';
  if (b.toString('ascii', 0, 4) === 'RIFF' && b.toString('ascii', 8, 12) === 'WEBP') return 'image/webp';
  return 'application/octet-stream';
}

import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PAGE_SIZE = 4096;
const MAGIC = 0xbeefc0de;
const DATA_VERSION = 2;
const PROBE = fileURLToPath(new URL('./lmdb-probe.mjs', import.meta.url));

/**
 * Throws when the LMDB files in `path` are not safe to open in this process. LMDB trusts its
 * pages (a damaged file can crash the reader), so: both meta pages must carry LMDB's magic and
 * data version, and a store that was not closed cleanly is first opened by a throwaway process.
 */
export function checkLmdbFiles(path: string): void {
  const file = join(path, 'data.mdb');
  if (!existsSync(file)) return;
  const head = Buffer.alloc(2 * PAGE_SIZE);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  for (const page of [0, 1]) {
    const at = page * PAGE_SIZE + 24; // MDB_meta after the 24-byte page header: magic, version
    if (head.readUInt32LE(at) !== MAGIC || head.readUInt32LE(at + 4) !== DATA_VERSION) throw new Error(`meta page ${page} of ${file} is not LMDB's`);
  }
  if (existsSync(cleanMarker(path))) return;
  const probe = spawnSync(process.execPath, [PROBE, path], { timeout: 120_000, stdio: ['ignore', 'ignore', 'pipe'] });
  if (probe.status !== 0) throw new Error(`opening ${file} failed in a probe process (${probe.signal ?? `exit ${probe.status}`}: ${String(probe.stderr).trim().slice(0, 200)})`);
}

/** Present only while the store is closed after a clean close. */
const cleanMarker = (path: string) => join(path, 'closed-cleanly');
export const markOpen = (path: string) => rmSync(cleanMarker(path), { force: true });
export const markClosed = (path: string) => writeFileSync(cleanMarker(path), new Date().toISOString());

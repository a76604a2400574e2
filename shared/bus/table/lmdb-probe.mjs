// Opens an LMDB store in a throwaway process and reads its roots: a damaged file can crash the
// process that reads it (LMDB trusts its pages), so a store not closed cleanly is tried here
// first. Exit 0: readable. Usage: node lmdb-probe.mjs <dir>
import { open } from 'lmdb';

const env = open({ path: process.argv[2], maxDbs: 4, pageSize: 4096, remapChunks: true, readOnly: true });
// As LmdbStore opens them: `data` holds record bytes (binary), the others msgpack.
for (const [name, encoding] of [['data', 'binary'], ['expiry', 'msgpack'], ['meta', 'msgpack']]) {
  const db = env.openDB({ name, encoding });
  db.getStats();
  for (const key of db.getKeys({ limit: 1 })) db.get(key);
}
await env.close();

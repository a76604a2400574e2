import { resolve } from 'node:path';
import type { Express } from 'express';
import { ARTIFACT_NAME, type ArtifactStore } from './connector/artifacts.ts';

/**
 * GET /artifacts/<sha256>.<ext>?ws=&exp=&sig=: generated images and oversized responses, served
 * only through the signed, expiring URL minted for the workspace whose command produced them
 * (connector/artifacts.ts); anything else is 403. The ops port binds to 127.0.0.1 unless
 * configured otherwise, and is never the ingester's public port.
 */
export function mountArtifactRoutes(app: Express, store: ArtifactStore): void {
  const root = resolve(store.dir);
  app.get('/artifacts/:name', async (req, res) => {
    const name = String(req.params.name);
    if (!ARTIFACT_NAME.test(name)) return void res.status(404).json({ error: 'not_found' });
    const problem = await store.check(name, req.query as Record<string, unknown>);
    if (problem) return void res.status(403).json({ error: problem });
    res.sendFile(name, { root, headers: { 'cache-control': 'private, max-age=3600', 'x-content-type-options': 'nosniff' } }, (e) => {
      if (e && !res.headersSent) res.status(404).json({ error: 'not_found' });
    });
  });
}

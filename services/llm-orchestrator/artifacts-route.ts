import { resolve } from 'node:path';
import type { Express } from 'express';
import { ARTIFACT_NAME, type ArtifactStore } from './connector/artifacts.ts';

/**
 * GET /artifacts/<sha256>.<ext>: generated images and oversized responses. The names are
 * content hashes (capability URLs); the ops port binds to 127.0.0.1 unless configured otherwise.
 */
export function mountArtifactRoutes(app: Express, store: ArtifactStore): void {
  const root = resolve(store.dir);
  app.get('/artifacts/:name', (req, res) => {
    const name = String(req.params.name);
    if (!ARTIFACT_NAME.test(name)) return void res.status(404).json({ error: 'not_found' });
    res.sendFile(name, { root, headers: { 'cache-control': 'private, max-age=3600', 'x-content-type-options': 'nosniff' } }, (e) => {
      if (e && !res.headersSent) res.status(404).json({ error: 'not_found' });
    });
  });
}

import { secretPaths, type SecretStore } from '../secrets/index.ts';
import type { Manifest } from './manifest.ts';

export type Credentials = { ok: true; values: Record<string, string>; source: 'workspace' | 'platform' | 'mixed' | 'none' } | { ok: false; missing: string[] };

/**
 * The platform's key for a connector (`platform/<connector>`), overridden field by field by the
 * workspace's own (`workspaces/<ws>/connectors/<connector>`), as seed 001 §1.2 asks.
 */
export async function resolveCredentials(store: SecretStore, manifest: Manifest, workspaceId: string): Promise<Credentials> {
  if (manifest.credentialFields.length === 0) return { ok: true, values: {}, source: 'none' };
  const [platform, workspace] = await Promise.all([store.get(secretPaths.platform(manifest.id)), store.get(secretPaths.workspace(workspaceId, manifest.id))]);
  const values = { ...(platform?.value ?? {}), ...(workspace?.value ?? {}) };
  const missing = manifest.credentialFields.filter((f) => !values[f]);
  if (missing.length) return { ok: false, missing };
  const source = workspace && platform ? 'mixed' : workspace ? 'workspace' : 'platform';
  return { ok: true, values, source };
}

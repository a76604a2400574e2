import { readdir } from 'node:fs/promises';
import { validateManifest } from './manifest.ts';
import type { Connector } from './types.ts';

/**
 * Connectors kept outside the tree (EXTRA_CONNECTORS_DIR): each subfolder's index.ts exports
 * `connector`. Manifests are validated here, at load. The hub's own connectors live in the
 * services that run them and are listed in shared/connectors/catalog/.
 */
export async function loadConnectors(dir: URL): Promise<Map<string, Connector>> {
  const out = new Map<string, Connector>();
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries.filter((d) => d.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const mod = (await import(new URL(`${e.name}/index.ts`, dir).href)) as { connector?: Connector };
    if (!mod.connector) throw new Error(`connector folder ${e.name} does not export \`connector\``);
    const manifest = validateManifest(mod.connector.manifest);
    if (out.has(manifest.id)) throw new Error(`two connectors with id ${manifest.id}`);
    for (const action of Object.keys(manifest.actions)) {
      if (typeof mod.connector.handlers[action] !== 'function') throw new Error(`connector ${manifest.id} has no handler for action ${action}`);
    }
    out.set(manifest.id, { ...mod.connector, manifest });
  }
  return out;
}

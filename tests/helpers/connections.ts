import type { Bus } from '../../shared/bus/types.ts';
import type { SecretStore } from '../../shared/secrets/index.ts';
import { secretPaths } from '../../shared/secrets/store.ts';

/**
 * Forgets what a test connected: each workspace's token in OpenBao and its connection record
 * (tombstoned), so no later run's owners poll or refresh them.
 */
export async function forgetConnections(o: { vault: SecretStore; bus: Bus | undefined; vendor: string; connectionsTopic: string }, workspaces: string[]): Promise<void> {
  for (const ws of workspaces) {
    await o.vault.delete(secretPaths.workspace(ws, o.vendor)).catch(() => undefined);
    await o.bus?.publish({ topic: o.connectionsTopic, key: ws, value: null }).catch(() => undefined);
  }
}

import { describe, expect, it } from 'vitest';
import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { Bus } from '../../../shared/bus/types.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import type { Connection } from '../state/connections.ts';
import { createTokenAccess, type TokenAccessDeps } from './access.ts';
import { writeTokens } from './vault.ts';

describe('a command whose access token has expired', () => {
  it('fails not_configured at once on a hub without TikTok client credentials (nobody can refresh it)', async () => {
    const secrets = new Map<string, { value: Record<string, string> }>();
    const store = { get: async (p: string) => secrets.get(p) ?? null, put: async (p: string, value: Record<string, string>) => void secrets.set(p, { value }) } as unknown as SecretStore;
    const expired = { access_token: 'act.old', refresh_token: 'rft.old', open_id: 'open-1', scope: [], issued_at: 1, access_expires_at: Date.now() - 1000, refresh_expires_at: Date.now() + 86_400_000 };
    await writeTokens(store, 'ws1', expired);
    const connection: Connection = { workspace_id: 'ws1', open_id: 'open-1', scope: [], status: 'active', issued_at: 1, access_expires_at: expired.access_expires_at, refresh_expires_at: expired.refresh_expires_at, updated_at: 1 };
    const requested: unknown[] = [];
    const tokens = createTokenAccess({
      bus: { publish: async (r: unknown) => void requested.push(r) } as unknown as Bus,
      store,
      connections: { get: () => connection } as unknown as KafkaTable<Connection>,
      connectUrl: async () => 'https://hub.example/tiktok/connect',
      waitMs: 60_000,
      oauth: () => null,
    } as unknown as TokenAccessDeps);
    await expect(tokens.withUserToken('ws1', 'cmd-1', async () => 'ran')).rejects.toMatchObject({ code: 'not_configured', message: expect.stringContaining('TIKTOK_CLIENT_SECRET') });
    expect(requested).toEqual([]); // no refresh asked of an owner that cannot do it
  });
});

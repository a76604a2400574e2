import { describe, expect, it } from 'vitest';
import type { KafkaTable } from '../../shared/bus/table/table.ts';
import type { IncomingRecord, OutgoingRecord } from '../../shared/bus/types.ts';
import type { WorkspaceConnector } from '../../shared/commands/state.ts';
import type { PlatformEvent } from '../../shared/events/platform-event.ts';
import { createLogger } from '../../shared/logger.ts';
import type { LinkTable } from '../../shared/links.ts';
import type { Runtime } from '../../shared/runtime.ts';
import type { SecretStore } from '../../shared/secrets/index.ts';
import { startLifecycle, type LifecycleDeps } from './lifecycle.ts';
import type { Connection } from './state/connections.ts';
import { readTokens, writeTokens } from './tokens/vault.ts';

/**
 * The lifecycle consumer's handler on an authorization.removed as the ingester publishes it: the
 * PlatformEvent's timestamp is when the hub received the webhook, its payload TikTok's body.
 */
async function lifecycleOf(issuedAt: number) {
  const secrets = new Map<string, { value: Record<string, string> }>();
  const store = {
    get: async (p: string) => secrets.get(p) ?? null,
    put: async (p: string, value: Record<string, string>) => void secrets.set(p, { value }),
    delete: async (p: string) => void secrets.delete(p),
  } as unknown as SecretStore;
  await writeTokens(store, 'ws1', { access_token: 'act.reconnected', refresh_token: 'rft.reconnected', open_id: 'open-1', scope: [], issued_at: issuedAt, access_expires_at: issuedAt + 7_200_000, refresh_expires_at: issuedAt + 15_552_000_000 });
  const connection: Connection = { workspace_id: 'ws1', open_id: 'open-1', scope: [], status: 'active', issued_at: issuedAt, access_expires_at: issuedAt + 7_200_000, refresh_expires_at: issuedAt + 15_552_000_000, updated_at: issuedAt };
  const published: OutgoingRecord[][] = [];
  let handler!: (r: IncomingRecord) => Promise<void>;
  const table = <V>(m: Map<string, V>) => ({ get: (k: string) => m.get(k), record: (key: string, value: V | undefined) => ({ topic: 't', key, value: value ? Buffer.from(JSON.stringify(value)) : null }), applyLocal: (k: string, v: V | undefined) => (v ? m.set(k, v) : m.delete(k)) });
  const rt = {
    logger: createLogger({ service: 'test', level: 'silent' }),
    codec: { decode: async (b: Buffer) => JSON.parse(String(b)) as PlatformEvent, encode: async (e: unknown) => Buffer.from(JSON.stringify(e)) },
    bus: {
      subscribe: async (o: { handler: typeof handler }) => ((handler = o.handler), { close: async () => undefined }),
      publishAtomic: async (r: OutgoingRecord[]) => void published.push(r),
    },
  } as unknown as Runtime;
  await startLifecycle({
    rt, store, groupId: 'g',
    links: table(new Map([['tiktok:open-1', { workspaceId: 'ws1' }]])) as unknown as LinkTable,
    connections: table(new Map([['ws1', connection]])) as unknown as KafkaTable<Connection>,
    workspaceConnectors: table(new Map()) as unknown as KafkaTable<WorkspaceConnector>,
  } as unknown as LifecycleDeps);
  /** TikTok's authorization.removed, created at `createTime` (s), reaching the hub at `receivedAt` (ms). */
  const deliver = (createTime: number, receivedAt: number) => {
    const body = { client_key: 'k', event: 'authorization.removed', create_time: createTime, user_openid: 'open-1', content: '{"reason":1}' };
    const event = { event_id: `e${createTime}`, event_type: 'tiktok.authorization.removed', workspace_id: 'ws1', timestamp: receivedAt, payload_json: JSON.stringify(body) };
    return handler({ value: Buffer.from(JSON.stringify(event)) } as IncomingRecord);
  };
  return { store, published, deliver };
}

describe('authorization.removed', () => {
  it('a removal that happened before the grant held, delivered after it (TikTok retries for up to 72 h), leaves the grant alone', async () => {
    const reconnectedAt = Date.now() - 60_000;
    const l = await lifecycleOf(reconnectedAt);
    // Removed 2 h before the user connected again; TikTok's retry reaches the hub only now.
    await l.deliver(Math.floor(reconnectedAt / 1000) - 7200, Date.now());
    expect(await readTokens(l.store, 'ws1')).toMatchObject({ access_token: 'act.reconnected' });
    expect(l.published).toEqual([]);
  });

  it('a removal of the grant held is applied however late it arrives', async () => {
    const connectedAt = Date.now() - 3 * 3_600_000;
    const l = await lifecycleOf(connectedAt);
    await l.deliver(Math.floor(connectedAt / 1000) + 3600, Date.now());
    expect(await readTokens(l.store, 'ws1')).toBeNull();
    expect(l.published).toHaveLength(1);
  });

  it('a removal in the same second as the grant was issued (create_time has whole seconds) is applied', async () => {
    const connectedAt = Math.floor(Date.now() / 1000) * 1000 - 5000 + 700; // x.700 s
    const l = await lifecycleOf(connectedAt);
    await l.deliver(Math.floor(connectedAt / 1000), Date.now()); // removed at x.something, reported as x
    expect(await readTokens(l.store, 'ws1')).toBeNull();
  });
});

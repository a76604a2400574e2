import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FencedWriter, OwnedPartition, PlacedRecord } from '../../../shared/bus/types.ts';
import { HubError } from '../../../shared/errors.ts';
import { createLogger } from '../../../shared/logger.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import type { Connection } from '../state/connections.ts';
import type { PollDeps } from '../sync/poller.ts';
import { writeTokens } from '../tokens/vault.ts';
import type { RefreshDeps } from './refresher.ts';
import { createSupervisor } from './supervisor.ts';

// TikTok's token endpoint answering 503 every time: every refresh fails, retryably.
const tokenCalls = vi.hoisted(() => ({ n: 0, ok: false }));
vi.mock('../api/oauth.ts', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../api/oauth.ts')>()),
  refreshTokens: async () => {
    tokenCalls.n++;
    if (tokenCalls.ok) return { access_token: `act.${tokenCalls.n}`, refresh_token: `rft.${tokenCalls.n}`, open_id: 'open-1', scope: ['video.list'], access_expires_at: Date.now() + 2 * 3_600_000, refresh_expires_at: Date.now() + 180 * 86_400_000 };
    throw new HubError('oauth_unavailable', 'TikTok /v2/oauth/token/ answered 503', { retryable: true });
  },
}));

const T0 = 1_800_000_000_000;
const HOUR = 3_600_000;

/**
 * The owner of one connection whose access token has expired, with fake timers. Its writer echoes
 * each connection record back to the supervisor 10 ms later, as the owned partition's table does;
 * the secret store counts its reads.
 */
async function owning(c: Partial<Connection> = {}) {
  const connection: Connection = { workspace_id: 'ws1', open_id: 'open-1', scope: ['video.list'], status: 'active', issued_at: T0 - 2 * HOUR, access_expires_at: T0 - 1000, refresh_expires_at: T0 + 100 * 24 * HOUR, updated_at: T0 - HOUR, ...c };
  const secrets = new Map<string, { value: Record<string, string> }>();
  let reads = 0;
  let lists = 0;
  const store = {
    kind: 'file',
    get: async (path: string) => (reads++, secrets.get(path) ?? null),
    put: async (path: string, value: Record<string, string>) => void secrets.set(path, { value }),
  } as unknown as SecretStore;
  await writeTokens(store, 'ws1', { access_token: 'act.expired', refresh_token: 'rft.1', open_id: 'open-1', scope: ['video.list'], issued_at: connection.issued_at, access_expires_at: connection.access_expires_at, refresh_expires_at: connection.refresh_expires_at });
  reads = 0;
  const sent: PlacedRecord[] = [];
  const logger = createLogger({ service: 'test', level: 'silent' });
  // eslint-disable-next-line prefer-const
  let supervisor: ReturnType<typeof createSupervisor>;
  const writer: FencedWriter = {
    dead: false,
    send: async (records) => {
      sent.push(...records);
      for (const { record } of records) setTimeout(() => supervisor.onChange(0, String(record.key), record.value ? (JSON.parse(String(record.value)) as Connection) : undefined), 10);
    },
  };
  const markProducer = () => ({ connect: async () => undefined, publishAtomic: async () => undefined, close: async () => undefined });
  const refresh = { store, logger, oauth: () => ({ baseUrl: 'https://open.tiktokapis.com', authorizeUrl: '', clientKey: 'k', clientSecret: 's' }), instanceId: 'owner-2', markProducer } as unknown as RefreshDeps;
  const poll = { store, logger, api: { call: async () => (lists++, { videos: [], has_more: false }) }, maxPages: 1 } as unknown as PollDeps;
  supervisor = createSupervisor({ refresh, poll, logger, marginMs: 30 * 60_000, claimStaleMs: 60_000, pollIntervalMs: 300_000, barrier: async () => undefined });
  const owned: OwnedPartition<Connection> = { partition: 0, writer, records: new Map([['ws1', connection]]) };
  await supervisor.onAcquired(owned);
  return { sent, reads: () => reads, lists: () => lists, supervisor };
}

describe('the owner of a connection whose token expired, TikTok failing its refreshes', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: T0 });
    tokenCalls.n = 0;
    tokenCalls.ok = false;
  });
  afterEach(() => vi.useRealTimers());

  it('refreshes on the backoff schedule, not once a second from the poller', async () => {
    const o = await owning();
    await vi.advanceTimersByTimeAsync(60_000);
    // 0 s, then 5, 10, 20 s after each failure: 4 attempts within the minute (the old poller path: ~60).
    expect(tokenCalls.n).toBeGreaterThanOrEqual(2);
    expect(tokenCalls.n).toBeLessThanOrEqual(5);
    expect(o.reads()).toBeLessThanOrEqual(8);
    o.supervisor.onReleased(0);
  });

  it('leaves a refresh another owner claimed moments ago to it until the claim goes stale', async () => {
    const o = await owning({ refreshing: { by: 'owner-1', since: T0 - 1000 } });
    await vi.advanceTimersByTimeAsync(30_000);
    expect(tokenCalls.n).toBe(0);
    await vi.advanceTimersByTimeAsync(40_000);
    expect(tokenCalls.n).toBeGreaterThanOrEqual(1);
    o.supervisor.onReleased(0);
  });

  it('polls again once a refresh went through, without waiting for the poll interval', async () => {
    const o = await owning();
    await vi.advanceTimersByTimeAsync(6_000);
    expect(o.lists()).toBe(0);
    tokenCalls.ok = true;
    await vi.advanceTimersByTimeAsync(15_000);
    expect(o.lists()).toBe(1);
    o.supervisor.onReleased(0);
  });
});

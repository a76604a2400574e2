import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { FencedWriter, PlacedRecord } from '../../../shared/bus/types.ts';
import type { WorkspaceConnector } from '../../../shared/commands/state.ts';
import type { EventCodec } from '../../../shared/events/codec.ts';
import { createLogger } from '../../../shared/logger.ts';
import { redactString, REDACTED } from '../../../shared/redact.ts';
import { parseAllowlist } from '../../../shared/net/allowlist.ts';
import { configureOutbound } from '../../../shared/net/outbound.ts';
import type { SecretRecord, SecretStore } from '../../../shared/secrets/index.ts';
import { startTikTokSimulator, type TikTokSimulator } from '../../../tests/simulators/tiktok/index.ts';
import { authorizeUrl, exchangeCode, pkcePair, type OAuthConfig } from '../api/oauth.ts';
import { CONNECTIONS_TOPIC, type Connection } from '../state/connections.ts';
import { readTokens, writeTokens } from '../tokens/vault.ts';
import { fromTokens, refreshConnection, type RefreshDeps } from './refresher.ts';

/**
 * The owner's refresh against the TikTok simulator (which rotates refresh tokens, as TikTok does:
 * the one used stops working). The secret store is a map whose reads can be made to fail; the
 * fenced writer records what it was given.
 */
describe('refreshConnection against the TikTok simulator', () => {
  let sim: TikTokSimulator;
  let cfg: OAuthConfig;
  beforeAll(async () => {
    sim = await startTikTokSimulator();
    configureOutbound(parseAllowlist('127.0.0.1'));
    cfg = { baseUrl: sim.url, authorizeUrl: sim.authorizeUrl, clientKey: sim.clientKey, clientSecret: sim.clientSecret };
  });
  afterAll(async () => {
    configureOutbound([]);
    await sim.close();
  });

  /** A workspace connected through the simulator's authorize page and code exchange, its tokens stored. */
  async function connected(ws = 'ws1') {
    const user = sim.addUser();
    sim.consent(user.open_id);
    const { verifier, challenge } = pkcePair();
    const redirectUri = 'http://127.0.0.1:9/tiktok/callback';
    const page = await fetch(authorizeUrl(cfg, { scopes: ['user.info.basic', 'video.list'], redirectUri, state: 's', challenge }), { redirect: 'manual' });
    const code = new URL(page.headers.get('location')!).searchParams.get('code')!;
    const tokens = await exchangeCode(cfg, { code, verifier, redirectUri });

    const secrets = new Map<string, SecretRecord>();
    // Reads after the first `after` ones fail `times` times; writes fail while `writesFail`; `afterFirstRead` runs once.
    const faults = { readsFail: 0, after: 0, writesFail: false, afterFirstRead: undefined as (() => Promise<void>) | undefined };
    let reads = 0;
    const store = {
      kind: 'file',
      get: async (path: string) => {
        reads++;
        if (reads > faults.after && faults.readsFail > 0) {
          faults.readsFail--;
          throw new Error('secret store unavailable (leader election)');
        }
        const v = secrets.get(path) ?? null;
        const hook = faults.afterFirstRead;
        faults.afterFirstRead = undefined;
        await hook?.();
        return v;
      },
      put: async (path: string, value: Record<string, string>) => {
        if (faults.writesFail) throw new Error('secret store unavailable (sealed)');
        secrets.set(path, { value, metadata: { createdAt: '', updatedAt: '' } });
      },
      delete: async (path: string) => void secrets.delete(path),
    } as unknown as SecretStore;
    const issued = { ...tokens, issued_at: Date.now() - 60_000 };
    await writeTokens(store, ws, issued);

    const sent: PlacedRecord[] = [];
    const writer: FencedWriter = { send: async (r) => void sent.push(...r), dead: false };
    // The workspace's marking producer: `fenced` is how many of its transactions a later holder fences (a connect's, between its read and its commit).
    const marking = { fenced: 0, onFence: undefined as (() => Promise<void>) | undefined };
    const markProducer = () => ({
      connect: async () => undefined,
      publishAtomic: async (records: PlacedRecord['record'][]) => {
        if (marking.fenced > 0) {
          marking.fenced--;
          await marking.onFence?.();
          throw new Error('Producer fenced (INVALID_PRODUCER_EPOCH)');
        }
        sent.push(...records.map((record) => ({ record })));
      },
      close: async () => undefined,
    });
    const logged: string[] = [];
    const d: RefreshDeps = {
      store,
      codec: { encode: async (e: unknown) => Buffer.from(JSON.stringify(e)) } as unknown as EventCodec,
      logger: createLogger({ service: 'test', level: 'info', destination: new Writable({ write: (chunk, _e, done) => (logged.push(String(chunk)), done()) }) }),
      oauth: () => cfg,
      workspaceConnectors: { get: () => undefined, record: (key: string, v: unknown) => ({ topic: 'ionflux.state.workspace-connectors', key, value: Buffer.from(JSON.stringify(v)) }), applyLocal: () => undefined } as unknown as KafkaTable<WorkspaceConnector>,
      connectUrl: async (w) => `https://hub.example/tiktok/connect?workspace=${w}`,
      instanceId: 'owner-1',
      storeRetryMs: 300,
      markProducer,
    };
    const connection: Connection = fromTokens({ workspace_id: ws }, issued);
    /** The connection records the writer was given, in order. */
    const records = () => sent.filter((p) => p.record.topic === CONNECTIONS_TOPIC).map((p) => JSON.parse(String(p.record.value)) as Connection);
    return { user, store, d, writer, sent, records, logged, connection, faults, issued, marking };
  }

  it('TikTok refusing the app (invalid_client: a rotated or mistyped client secret) is retried; the connection is not marked', async () => {
    const c = await connected();
    c.d.oauth = () => ({ ...cfg, clientSecret: 'a-secret-rotated-since' });
    expect(await refreshConnection(c.d, c.writer, c.connection)).toEqual({ retry: true });
    // Only the claim was written: no needs_reauthorization record, state, event or audit.
    expect(c.sent).toHaveLength(1);
    expect(c.records()).toMatchObject([{ status: 'active', refreshing: { by: 'owner-1' } }]);
    const line = c.logged.find((l) => l.includes('TIKTOK_CLIENT_SECRET'));
    expect(line).toBeDefined();
    expect(line).not.toContain('a-secret-rotated-since');

    // The operator fixes the secret: the same grant refreshes.
    c.d.oauth = () => cfg;
    const r = await refreshConnection(c.d, c.writer, c.connection);
    expect(r).toMatchObject({ next: { status: 'active' } });
    expect(sim.oauth.refreshes.get(c.user.open_id)).toBe(1);
  });

  it('a refused grant (invalid_grant) still marks the connection needs_reauthorization', async () => {
    const c = await connected();
    sim.oauth.failRefresh.add(c.user.open_id);
    const r = await refreshConnection(c.d, c.writer, c.connection);
    expect(r).toMatchObject({ next: { status: 'needs_reauthorization' } });
    expect(c.records().at(-1)).toMatchObject({ status: 'needs_reauthorization' });
    expect(c.sent.some((p) => p.record.topic.endsWith('.authorization.needs_reauthorization'))).toBe(true);
  });

  it('a 5xx or 429 from the token endpoint is TikTok unable to answer, whatever error body it carries: retried, never marked', async () => {
    const c = await connected();
    // A stand-in for /v2/oauth/token/ in front of TikTok, failing with bodies that name errors.
    const answers = [[503, { error: 'invalid_grant', error_description: 'upstream' }], [429, { error: 'rate_limit_exceeded' }]] as const;
    let n = 0;
    const proxy = createServer((_req, res) => {
      const [status, body] = answers[n++ % answers.length]!;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    try {
      c.d.oauth = () => ({ ...cfg, baseUrl: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` });
      for (let i = 0; i < answers.length; i++) expect(await refreshConnection(c.d, c.writer, c.connection)).toEqual({ retry: true });
      expect(c.records().every((r) => r.status === 'active')).toBe(true);
    } finally {
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });

  const marked = (c: { sent: PlacedRecord[] }) => c.sent.some((p) => p.record.topic.endsWith('.authorization.needs_reauthorization'));

  it('a failed read of the secret store after TikTok rotated the tokens loses nothing: the new tokens are stored, one refresh', async () => {
    const c = await connected();
    c.faults.after = 1; // the read after TikTok answered fails once
    c.faults.readsFail = 1;
    // The owner tries again with the record it had (as the supervisor does after a failure).
    const first = await refreshConnection(c.d, c.writer, c.connection).catch((e: unknown) => e);
    const second = await refreshConnection(c.d, c.writer, c.connection);
    expect(first).toMatchObject({ next: { status: 'active' } });
    expect(second).toMatchObject({ next: { status: 'active' } });
    expect(sim.oauth.refreshes.get(c.user.open_id)).toBe(1);
    expect(marked(c)).toBe(false);
    const stored = (await readTokens(c.store, 'ws1'))!;
    expect(stored.issued_at).toBeGreaterThan(c.issued.issued_at);
    // The stored refresh token is the one TikTok rotated to: it refreshes again.
    expect(await refreshConnection(c.d, c.writer, (second as { next: Connection }).next)).toMatchObject({ next: { status: 'active' } });
  });

  it('tokens the secret store would not take are kept and stored by the next attempt instead of refreshing again', async () => {
    const c = await connected();
    c.faults.writesFail = true;
    const first = await refreshConnection(c.d, c.writer, c.connection);
    expect(first).toMatchObject({ retry: true, unstored: { replaces: c.issued.issued_at } });
    const unstored = 'retry' in first ? first.unstored! : undefined;
    c.faults.writesFail = false;
    const second = await refreshConnection(c.d, c.writer, c.connection, unstored);
    expect(second).toMatchObject({ next: { status: 'active' } });
    expect(sim.oauth.refreshes.get(c.user.open_id)).toBe(1);
    expect(marked(c)).toBe(false);
    expect((await readTokens(c.store, 'ws1'))!.access_token).toBe(unstored!.tokens.access_token);
  });

  it('a grant refused because a reconnect stored newer tokens meanwhile: those are adopted, the connection is not marked', async () => {
    const c = await connected();
    // The user reconnects while the owner is refreshing: new tokens land in the store after the owner read its own.
    const again = await connected('ws-reconnect');
    const reconnected = { ...(await readTokens(again.store, 'ws-reconnect'))!, issued_at: Date.now() };
    c.faults.afterFirstRead = () => writeTokens(c.store, 'ws1', reconnected);
    sim.oauth.failRefresh.add(c.user.open_id);
    const r = await refreshConnection(c.d, c.writer, c.connection);
    expect(r).toMatchObject({ next: { status: 'active', issued_at: reconnected.issued_at } });
    expect(marked(c)).toBe(false);
    expect(c.records().at(-1)).toMatchObject({ status: 'active', issued_at: reconnected.issued_at });
  });

  it('a refused grant whose marking is fenced by a reconnect storing tokens after the last check: the reconnect stands, nothing is marked', async () => {
    const c = await connected();
    const again = await connected('ws-reconnect');
    const reconnected = { ...(await readTokens(again.store, 'ws-reconnect'))!, issued_at: Date.now() };
    // The reconnect stores its tokens and fences the marking between the refusal's read and its commit.
    c.marking.fenced = 1;
    c.marking.onFence = () => writeTokens(c.store, 'ws1', reconnected);
    sim.oauth.failRefresh.add(c.user.open_id);
    const r = await refreshConnection(c.d, c.writer, c.connection);
    expect(r).toMatchObject({ next: { status: 'active', issued_at: reconnected.issued_at } });
    expect(marked(c)).toBe(false);
    expect(c.records().every((x) => x.status === 'active')).toBe(true);
  });

  it('masks the new tokens in logs and stops masking the refresh token TikTok retired (the masking list stays bounded)', async () => {
    const c = await connected();
    const r = await refreshConnection(c.d, c.writer, c.connection);
    expect(r).toMatchObject({ next: { status: 'active' } });
    const now = (await readTokens(c.store, 'ws1'))!;
    expect(redactString(`${now.access_token} ${now.refresh_token}`)).toBe(`${REDACTED} ${REDACTED}`);
    expect(redactString(c.issued.refresh_token)).toBe(c.issued.refresh_token);
  });

  it("gets TikTok's token lifetimes from the simulator: access 2 hours, refresh 180 days", async () => {
    const c = await connected();
    const now = Date.now();
    expect(c.issued.access_expires_at - now).toBeGreaterThan(7_000_000);
    expect(c.issued.access_expires_at - now).toBeLessThanOrEqual(7_200_000);
    expect(Math.round((c.issued.refresh_expires_at - now) / 86_400_000)).toBe(180);
  });
});

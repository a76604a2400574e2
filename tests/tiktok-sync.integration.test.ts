import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../shared/bus/topics.ts';
import { createHubClient, type HubClient } from '../shared/commands/client.ts';
import { defaultOutcomeTopic } from '../shared/commands/outcome.ts';
import { openApprovals, openWorkspaceConnectors, wsConnectorKey, type Approval } from '../shared/commands/state.ts';
import type { KafkaTable } from '../shared/bus/table/table.ts';
import { linkKey, openLinks } from '../shared/links.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { secretPaths } from '../shared/secrets/store.ts';
import { CONNECTIONS_TOPIC } from '../services/tiktok-sync/state/connections.ts';
import { connectGrant, infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';
import { startIngester, type RunningIngester } from './helpers/ingester.ts';
import { startMediaServer } from './helpers/llm.ts';
import { approveAsAdmin, browseConnect, simEnv, startTikTokSync, type RunningTikTokSync } from './helpers/tiktok.ts';
import { startTikTokSimulator, type TikTokSimulator } from './simulators/tiktok/index.ts';
import { forgetConnections } from './helpers/connections.ts';
import { startReauthGate } from './helpers/reauth-gate.ts';
import { untilWith } from './helpers/until.ts';

const env = infraEnv();
const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });

describe('tiktok-sync against a TikTok v2 simulator: connect, reads, polling, refresh, publishing, revocation', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sim: TikTokSimulator;
  let sync: RunningTikTokSync;
  let ingester: RunningIngester;
  let media: Awaited<ReturnType<typeof startMediaServer>>;
  let client: HubClient;
  let approvals: KafkaTable<Approval>;
  const workspaces: string[] = [];

  const newWorkspace = () => {
    const ws = uid('ws');
    workspaces.push(ws);
    return ws;
  };
  const send = (ws: string, action: string, params: Record<string, unknown> = {}, timeoutMs = 60_000) => client.send({ workspace_id: ws, agent_id: 'agent-t', service: 'tiktok', action, params }, { timeoutMs });
  const events = async (ws: string, entity: string, action: string, atLeast = 0, timeoutMs = 15_000) => Promise.all((await readAll(infra.bus, topics.event('tiktok', ws, entity, action), { atLeast, timeoutMs })).map(async (r) => infra.codec.decode(r.value!)));
  const connect = async (ws: string, openId: string) => {
    const r = await browseConnect(`${sync.url}/tiktok/connect?workspace=${ws}&grant=${await connectGrant('tiktok', ws)}`, sim, openId);
    expect(r.status, r.body).toBe(200);
  };
  const until = untilWith(() => `simulator saw: ${sim.requests.slice(-10).map((x) => `${x.method} ${x.path} ${x.status}`).join(', ')}\n${sync.output.slice(-15).join('\n')}`);

  beforeAll(async () => {
    infra = await realInfra('tiktok-test');
    media = await startMediaServer();
    sim = await startTikTokSimulator({ verifiedUrlPrefixes: ['https://media.example.com/'], limits: { 'video.query': 2 }, windowMs: 3000 });
    ingester = await startIngester({ TIKTOK_CLIENT_SECRET: sim.clientSecret });
    sync = await startTikTokSync({
      ...simEnv(sim),
      TIKTOK_SYNC_GROUP: uid('ttg'),
      TIKTOK_POLL_INTERVAL_MS: '2000',
      TIKTOK_REFRESH_MARGIN_MS: '15000',
      TIKTOK_PUBLISH_POLL_MS: '300',
      TIKTOK_UPLOAD_CHUNK_BYTES: String(5 * 1024 * 1024),
      // The hub's own limiter is lifted for video.query so the simulator's 429 is what is met.
      TIKTOK_RATE_LIMITS: JSON.stringify({ 'video.query': 1000 }),
      TIKTOK_THROTTLE_WAIT_MS: '1500',
      LOG_LEVEL: 'debug',
    });
    client = await createHubClient({ brokers: env.brokers, registryUrl: env.registryUrl });
    approvals = await openApprovals(infra);
  }, 180_000);

  afterAll(async () => {
    if (process.env.TIKTOK_TEST_LOG) (await import('node:fs')).writeFileSync(process.env.TIKTOK_TEST_LOG, sync?.output.join('\n') ?? '');
    await approvals?.close();
    await client?.close();
    await sync?.stop();
    await ingester?.stop();
    // Leave no connection behind for later runs' owners to look after.
    await forgetConnections({ vault, bus: infra?.bus, vendor: 'tiktok', connectionsTopic: CONNECTIONS_TOPIC }, workspaces);
    await Promise.all([sim?.close(), media?.close()]);
    await infra?.close();
  });

  it('connects end to end through `ionflux connect tiktok`: PKCE, tokens in Vault, the account linked, audited, announced', async () => {
    const ws = newWorkspace();
    const user = sim.addUser();
    const cli = spawn(process.execPath, ['bin/ionflux.mjs', 'connect', 'tiktok', '--workspace', ws, '--timeout', '60', '--json'], { env: { ...process.env, PUBLIC_BASE_URL: sync.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    cli.stdout.on('data', (d) => (stdout += d));
    const exit = new Promise<number | null>((r) => cli.on('close', r));
    await until('the CLI to print the URL', () => stdout.includes('authorization_url'));
    const printed = JSON.parse(stdout.split('\n')[0]!) as { authorization_url: string };
    expect(printed.authorization_url).toMatch(new RegExp(`^${sync.url}/tiktok/connect\\?workspace=${ws}&grant=[\\w-]+\\.[\\w-]+$`));

    const r = await browseConnect(printed.authorization_url, sim, user.open_id);
    expect(r.status, r.body).toBe(200);
    // The hub sent TikTok everything Login Kit v2 asks for, with an S256 challenge.
    expect(Object.fromEntries(r.authorize.searchParams)).toMatchObject({ client_key: sim.clientKey, response_type: 'code', scope: 'user.info.basic,user.info.stats,video.list,video.publish', redirect_uri: `${sync.url}/tiktok/callback`, code_challenge_method: 'S256' });
    expect(r.authorize.searchParams.get('code_challenge')).toMatch(/^[0-9a-f]{64}$/);
    expect(await exit).toBe(0);
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toMatchObject({ connection: 'connected', open_id: user.open_id });

    const stored = await vault.get(secretPaths.workspace(ws, 'tiktok'));
    expect(JSON.parse(stored!.value.meta!)).toMatchObject({ open_id: user.open_id, scope: ['user.info.basic', 'user.info.stats', 'video.list', 'video.publish'] });
    expect(sim.state.grantOf(stored!.value.access_token!)?.open_id).toBe(user.open_id);
    expect(stored?.metadata.expiresAt).toBeDefined();
    const links = await openLinks(infra);
    expect(links.get(linkKey('tiktok', user.open_id))?.workspaceId).toBe(ws);
    await links.close();
    const audit = (await Promise.all((await readAll(infra.bus, topics.audit, { atLeast: 1 })).map((x) => infra.codec.decode(x.value!)))).filter((e) => e.workspace_id === ws);
    expect(audit.map((e) => JSON.parse(e.payload_json) as { kind: string; connector: string })).toContainEqual(expect.objectContaining({ kind: 'connect', connector: 'tiktok' }));
    expect((await events(ws, 'authorization', 'granted', 1)).map((e) => JSON.parse(e.payload_json))).toEqual([expect.objectContaining({ open_id: user.open_id })]);

    // user.info with the fields the caller chose; one needing an ungranted scope is named.
    const info = await send(ws, 'user.info', { fields: ['open_id', 'display_name', 'follower_count'] });
    expect(info).toMatchObject({ status: 'succeeded', result: { user: { open_id: user.open_id, display_name: user.display_name, follower_count: user.follower_count } } });
    const noProfile = await send(ws, 'user.info', { fields: ['open_id', 'bio_description'] });
    expect(noProfile).toMatchObject({ status: 'failed', error: { code: 'scope_permission_missed' } });
    expect(noProfile.error!.message).toContain('user.info.profile');
    // Tokens never reach logs.
    const log = sync.output.join('\n');
    expect(log).not.toContain(stored!.value.access_token);
    expect(log).not.toContain(stored!.value.refresh_token);
    expect(log).not.toContain(sim.clientSecret);
  });

  it('refuses a code obtained with another PKCE challenge (verifier mismatch): nothing stored, nothing linked', async () => {
    const ws = newWorkspace();
    const user = sim.addUser();
    const r = await browseConnect(`${sync.url}/tiktok/connect?workspace=${ws}&grant=${await connectGrant('tiktok', ws)}`, sim, user.open_id, {
      tamper: (u) => u.searchParams.set('code_challenge', createHash('sha256').update(randomBytes(48).toString('base64url')).digest('hex')),
    });
    expect(r.status).toBe(400);
    expect(r.body).toContain('Code verifier or code challenge is invalid');
    expect(await vault.get(secretPaths.workspace(ws, 'tiktok'))).toBeNull();
    const links = await openLinks(infra);
    expect(links.get(linkKey('tiktok', user.open_id))).toBeUndefined();
    await links.close();
    // A forged or altered state is refused before TikTok is asked anything.
    const forged = await fetch(`${sync.url}/tiktok/callback?code=abc&state=${randomBytes(60).toString('base64url')}`);
    expect(forged.status).toBe(400);
    // A connect link's consent page handed to someone else: their browser comes back without the
    // cookie of the one that opened it, and their account is not bound to the workspace.
    const exchanges = () => sim.requests.filter((x) => x.path === '/v2/oauth/token/').length;
    const before = exchanges();
    const other = await browseConnect(`${sync.url}/tiktok/connect?workspace=${ws}&grant=${await connectGrant('tiktok', ws)}`, sim, user.open_id, { otherBrowser: true });
    expect(other.status).toBe(400);
    expect(other.body).toContain('same browser');
    expect(exchanges()).toBe(before);
    expect(await vault.get(secretPaths.workspace(ws, 'tiktok'))).toBeNull();
    // Only a link the hub issued for this workspace begins: whoever completes one binds their account to it.
    const plain = `${sync.url}/tiktok/connect?workspace=${ws}`;
    const valid = await connectGrant('tiktok', ws);
    for (const url of [plain, `${plain}&grant=${await connectGrant('tiktok', uid('ws'))}`, `${plain}&grant=${await connectGrant('shopify', ws)}`, `${plain}&grant=${valid.slice(0, -3)}${valid.endsWith('AAA') ? 'BBB' : 'AAA'}`]) {
      const res = await fetch(url, { redirect: 'manual' });
      expect(res.status).toBe(403);
      expect(await res.text()).toContain(`ionflux connect tiktok --workspace ${ws}`);
    }
  });

  it('refuses (409) an account another workspace holds, and leaves that workspace connected (no revoke at TikTok)', async () => {
    const [held, other] = [newWorkspace(), newWorkspace()];
    const user = sim.addUser();
    await connect(held, user.open_id);
    const r = await browseConnect(`${sync.url}/tiktok/connect?workspace=${other}&grant=${await connectGrant('tiktok', other)}`, sim, user.open_id);
    expect(r.status).toBe(409);
    // TikTok's revoke disconnects the app from the account: the holding workspace would lose it.
    expect(sim.requests.filter((x) => x.path === '/v2/oauth/revoke/')).toEqual([]);
    expect(await send(held, 'user.info')).toMatchObject({ status: 'succeeded' });
    expect(await vault.get(secretPaths.workspace(other, 'tiktok'))).toBeNull();
  });

  it('lists videos page by page, queries them by id, and answers Research API video and hashtag queries', async () => {
    const ws = newWorkspace();
    const user = sim.addUser({ videos: 45 });
    await connect(ws, user.open_id);
    const seen: string[] = [];
    let cursor: number | undefined;
    for (let page = 0; page < 5; page++) {
      const out = await send(ws, 'videos.list', { max_count: 20, ...(cursor !== undefined ? { cursor } : {}) });
      const result = out.result as { videos: { id: string }[]; cursor: number; has_more: boolean };
      seen.push(...result.videos.map((v) => v.id));
      if (!result.has_more) break;
      cursor = result.cursor;
    }
    expect(seen).toHaveLength(45);
    expect(new Set(seen)).toEqual(new Set(user.videos.map((v) => v.id)));

    const ids = user.videos.slice(0, 3).map((v) => v.id);
    const q = await send(ws, 'videos.query', { video_ids: [...ids, '1234567890123456789'], fields: ['id', 'title', 'like_count'] });
    expect((q.result as { videos: { id: string }[] }).videos.map((v) => v.id).sort()).toEqual([...ids].sort());

    const day = (d: Date) => d.toISOString().slice(0, 10).replace(/-/g, '');
    const now = Math.floor(Date.now() / 1000);
    sim.addResearchVideos(Array.from({ length: 150 }, (_, i) => ({
      id: String(7_400_000_000_000_000_000n + BigInt(i)), create_time: now - 3600 - i, region_code: i % 2 ? 'US' : 'DE', username: `u${i}`, video_description: `clip ${i}`,
      hashtag_names: i % 3 === 0 ? ['cats', 'funny'] : i % 3 === 1 ? ['cats'] : ['dogs'], like_count: 2, comment_count: 1, share_count: 1, view_count: 10, music_id: '7000000000000000001', effect_ids: [], video_duration: 20,
    })));
    const range = { start_date: day(new Date(Date.now() - 2 * 86_400_000)), end_date: day(new Date()) };
    const rv = await send(ws, 'research.videos.query', { query: { and: [{ operation: 'IN', field_name: 'region_code', field_values: ['US'] }] }, ...range, max_count: 100 });
    expect(rv).toMatchObject({ status: 'succeeded', result: { has_more: false } });
    const rvideos = (rv.result as { videos: { id: string }[] }).videos;
    expect(rvideos).toHaveLength(75);
    // int64 ids arrive with every digit.
    expect(rvideos.map((v) => v.id)).toContain('7400000000000000001');

    const tags = await send(ws, 'research.hashtags.query', { hashtags: ['#cats', 'dogs'], ...range, max_videos: 1000 });
    expect(tags).toMatchObject({ status: 'succeeded', result: { videos_examined: 150, has_more: false } });
    const byName = Object.fromEntries((tags.result as { hashtags: { name: string; video_count: number; view_count: number; top_related: { name: string }[] }[] }).hashtags.map((h) => [h.name, h]));
    expect(byName.cats).toMatchObject({ video_count: 100, view_count: 1000, top_related: [{ name: 'funny', video_count: 50 }] });
    expect(byName.dogs).toMatchObject({ video_count: 50, view_count: 500 });
    // The research calls used a client token, never the user's.
    expect(sim.requests.filter((x) => x.path === '/v2/research/video/query/').every((x) => x.token?.startsWith('clt.'))).toBe(true);
  });

  it('polls linked accounts: each video becomes one video.created event, a change one video.updated, and a poll that finds nothing new publishes nothing', async () => {
    const ws = newWorkspace();
    const user = sim.addUser({ videos: 25 });
    await connect(ws, user.open_id);
    const created = await events(ws, 'video', 'created', 25);
    expect(created).toHaveLength(25);
    expect(new Set(created.map((e) => (JSON.parse(e.payload_json) as { video: { id: string } }).video.id))).toEqual(new Set(user.videos.map((v) => v.id)));
    // Several more polls of this user's videos happen (every 2 s; other tests' users are polled too); none publishes anything.
    const polled = () => sim.requests.filter((x) => x.path === '/v2/video/list/' && x.status === 200 && x.token !== null && sim.state.grantOf(x.token)?.open_id === user.open_id).length;
    const lists = polled();
    await until('two more polls', () => polled() >= lists + 4);
    expect(await events(ws, 'video', 'created', 0, 500)).toHaveLength(25);
    expect(await events(ws, 'video', 'updated', 0, 500)).toHaveLength(0);

    user.videos[3]!.like_count += 7;
    const updated = await events(ws, 'video', 'updated', 1);
    expect(updated).toHaveLength(1);
    const p = JSON.parse(updated[0]!.payload_json) as { video: { id: string; like_count: number }; previous_version: string; version: string };
    expect(p.video).toMatchObject({ id: user.videos[3]!.id, like_count: user.videos[3]!.like_count });
    expect(p.previous_version).not.toBe(p.version);
    const after = polled();
    await until('two more polls', () => polled() >= after + 4);
    expect(await events(ws, 'video', 'updated', 0, 500)).toHaveLength(1);
  });

  it('refreshes a token before it expires, by its owner, once; commands then use the new one', async () => {
    const ws = newWorkspace();
    const user = sim.addUser({ videos: 1 });
    sim.nextGrantAccessTtlS(25); // refreshed at 25 s - TIKTOK_REFRESH_MARGIN_MS (15 s)
    const connectedAt = Date.now();
    await connect(ws, user.open_id);
    const first = (await vault.get(secretPaths.workspace(ws, 'tiktok')))!.value;
    const issued = async () => (JSON.parse((await vault.get(secretPaths.workspace(ws, 'tiktok')))?.value.meta ?? '{}') as { issued_at?: number; access_expires_at?: number });
    const firstIssued = (await issued()).issued_at!;
    await until('the refresh', async () => ((await issued()).issued_at ?? 0) > firstIssued);
    const refreshes = sim.oauth.refreshLog.filter((x) => x.open_id === user.open_id);
    expect(refreshes).toHaveLength(1);
    expect(refreshes[0]!.ok).toBe(true);
    expect(refreshes[0]!.at).toBeLessThan(connectedAt + 25_000);
    const now = (await vault.get(secretPaths.workspace(ws, 'tiktok')))!.value;
    expect(now.access_token).not.toBe(first.access_token);
    expect(now.refresh_token).not.toBe(first.refresh_token); // TikTok may rotate it; the new one is kept
    expect((await issued()).access_expires_at).toBeGreaterThan(Date.now() + 3600_000);
    const out = await send(ws, 'videos.list', {});
    expect(out.status).toBe('succeeded');
    expect(sim.requests.filter((x) => x.path === '/v2/video/list/' && x.token === now.access_token).length).toBeGreaterThan(0);
  });

  it('a refused refresh marks the connection needs_reauthorization with an event and an audit record; commands then fail with the connect URL', async () => {
    const ws = newWorkspace();
    const user = sim.addUser({ videos: 1 });
    sim.oauth.failRefresh.add(user.open_id);
    sim.nextGrantAccessTtlS(20);
    await connect(ws, user.open_id);
    const needs = await events(ws, 'authorization', 'needs_reauthorization', 1, 40_000);
    expect(needs).toHaveLength(1);
    expect(JSON.parse(needs[0]!.payload_json)).toMatchObject({ open_id: user.open_id, connect_url: expect.stringMatching(new RegExp(`^${sync.url}/tiktok/connect\\?workspace=${ws}&grant=`)) });
    expect(JSON.parse(needs[0]!.payload_json).reason).toContain('invalid_grant');
    const audit = (await Promise.all((await readAll(infra.bus, topics.audit, { atLeast: 1 })).map((x) => infra.codec.decode(x.value!)))).filter((e) => e.workspace_id === ws).map((e) => JSON.parse(e.payload_json) as Record<string, string>);
    expect(audit).toContainEqual(expect.objectContaining({ kind: 'action_failed', action: 'token.refresh', outcome: 'needs_reauthorization' }));
    const table = await openWorkspaceConnectors(infra);
    expect(table.get(wsConnectorKey(ws, 'tiktok'))?.connection).toBe('needs_reauth');
    await table.close();
    const out = await send(ws, 'videos.list', {});
    expect(out).toMatchObject({ status: 'failed', error: { code: 'needs_reauthorization' } });
    expect(out.error!.auth_help).toContain('ionflux connect tiktok --workspace <workspace>');
    expect(sim.oauth.refreshLog.filter((x) => x.open_id === user.open_id)).toHaveLength(1);
  });

  it('a token TikTok calls invalid is refreshed once by the owner and the command succeeds with the new one', async () => {
    const ws = newWorkspace();
    const user = sim.addUser({ videos: 2 });
    await connect(ws, user.open_id);
    sim.invalidateAccessTokens(user.open_id);
    const out = await send(ws, 'videos.list', {});
    expect(out).toMatchObject({ status: 'succeeded' });
    expect((out.result as { videos: unknown[] }).videos).toHaveLength(2);
    expect(sim.oauth.refreshes.get(user.open_id)).toBe(1);
  });

  it('waits out TikTok 429s (rate_limit_exceeded) and drops nothing', async () => {
    const ws = newWorkspace();
    const user = sim.addUser({ videos: 3 });
    await connect(ws, user.open_id);
    const limited = () => sim.requests.filter((x) => x.path === '/v2/video/query/' && x.status === 429).length;
    const before = limited();
    const ids = [user.videos[0]!.id];
    const outs = await Promise.all([1, 2, 3, 4].map(() => send(ws, 'videos.query', { video_ids: ids })));
    expect(outs.map((o) => o.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    expect(limited()).toBeGreaterThan(before);
    expect(Math.max(...outs.map((o) => o.attempts))).toBeGreaterThan(1);
  });

  it('publishes a FILE_UPLOAD video only after approval, in chunks, and ends on the post.publish.complete webhook', async () => {
    const ws = newWorkspace();
    const user = sim.addUser({ videos: 0 });
    await connect(ws, user.open_id);
    const video = randomBytes(11 * 1024 * 1024);
    const url = media.serve(`/clip-${uid()}.mp4`, video, 'video/mp4');
    const asked = await send(ws, 'videos.publish', { source: 'FILE_UPLOAD', video_url: url, title: 'Hello #sim', privacy_level: 'PUBLIC_TO_EVERYONE' });
    expect(asked).toMatchObject({ status: 'awaiting_approval' });
    expect(sim.count('/v2/post/publish/creator_info/query/') + sim.count('/v2/post/publish/video/init/')).toBe(0);
    await expect.poll(() => approvals.get(asked.approval_id!)?.status, { timeout: 10_000 }).toBe('pending');
    const finished = (await nextOutcome(ws, asked.command_id, 90_000)).outcome;
    await approveAsAdmin({ bus: infra.bus, codec: infra.codec, approvals }, asked.approval_id!);
    const publishId = await waitForPublish(user.open_id);
    await until('both chunks', () => sim.state.publishes.get(publishId)!.uploaded_bytes === video.length);
    expect(sim.requests.filter((x) => x.method === 'PUT' && x.path === '/video/').map((x) => x.status)).toEqual([206, 201]);
    // TikTok's webhook arrives (through the ingester) while the post is still processing.
    await ingesterKnows(user.open_id);
    const hook = await sim.sendWebhook(`${ingester.url}/webhooks/tiktok`, 'post.publish.complete', user.open_id, { publish_id: publishId, publish_type: 'DIRECT_PUBLISH' });
    expect(hook.status, hook.body).toBe(200);
    expect(await finished).toMatchObject({ status: 'succeeded', result: { publish_id: publishId, status: 'PUBLISH_COMPLETE', status_source: 'webhook' } });
    expect(sim.count('/v2/post/publish/video/init/')).toBe(1);
    expect(sim.state.publishes.get(publishId)!.status).toBe('PROCESSING_DOWNLOAD');
  });

  it('authorization.removed (a signed webhook through the ingester) forgets the tokens and unlinks the account', async () => {
    const ws = newWorkspace();
    const user = sim.addUser({ videos: 1 });
    await connect(ws, user.open_id);
    await ingesterKnows(user.open_id);
    const hook = await sim.sendWebhook(`${ingester.url}/webhooks/tiktok`, 'authorization.removed', user.open_id, { reason: 1 });
    expect(hook.status, hook.body).toBe(200);
    await until('tokens to be deleted', async () => (await vault.get(secretPaths.workspace(ws, 'tiktok'))) === null);
    const links = await openLinks(infra);
    expect(links.get(linkKey('tiktok', user.open_id))).toBeUndefined();
    await links.close();
    const table = await openWorkspaceConnectors(infra);
    expect(table.get(wsConnectorKey(ws, 'tiktok'))).toMatchObject({ connection: 'disconnected' });
    await table.close();
    const audit = (await Promise.all((await readAll(infra.bus, topics.audit, { atLeast: 1 })).map((x) => infra.codec.decode(x.value!)))).filter((e) => e.workspace_id === ws).map((e) => JSON.parse(e.payload_json) as Record<string, string>);
    expect(audit).toContainEqual(expect.objectContaining({ kind: 'disconnect', connector: 'tiktok' }));
    expect(await send(ws, 'user.info', {})).toMatchObject({ status: 'failed', error: { code: 'not_connected' } });
  });

  // ---- helpers that need the suite's state ----
  /**
   * The ingester reads links from Kafka as they are written; a webhook sent the instant after
   * connecting can meet it before the link (it would be dead-lettered as unlinked, as in
   * production). Harmless signed deliveries are sent until one is routed.
   */
  async function ingesterKnows(openId: string): Promise<void> {
    await until('the ingester to route the account', async () => (await sim.sendWebhook(`${ingester.url}/webhooks/tiktok`, 'video.publish.completed', openId, { share_id: `video.${uid()}` })).status === 200);
  }
  async function waitForPublish(openId: string): Promise<string> {
    let id = '';
    await until('the init call', () => Boolean((id = [...sim.state.publishes.values()].find((p) => p.open_id === openId)?.publish_id ?? '')), 60_000);
    return id;
  }
  /** Subscribes now and resolves with the command's final (succeeded or failed) outcome payload. */
  async function nextOutcome(ws: string, commandId: string, timeoutMs: number): Promise<{ outcome: Promise<Record<string, unknown>> }> {
    let found!: (e: Record<string, unknown>) => void;
    const got = new Promise<Record<string, unknown>>((resolve) => (found = resolve));
    const sub = await client.subscribe(defaultOutcomeTopic('tiktok', ws), (e) => {
      if (e.correlation_id === commandId && !e.event_type.endsWith('awaiting_approval')) found(JSON.parse(e.payload_json) as Record<string, unknown>);
    });
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no outcome for ${commandId}; tiktok-sync said:\n${sync.output.slice(-15).join('\n')}`)), timeoutMs).unref());
    const first = Promise.race([got, timeout]).finally(() => void sub.close());
    first.catch(() => undefined); // reported where it is awaited
    return { outcome: first };
  }
});

// Two connect callbacks for one TikTok account at once (shared/security/oauth-claim.ts): on two
// instances of one deployment, their code exchanges held at a gate in front of the simulator.
import { startExchangeGate, type ExchangeGate } from './helpers/exchange-gate.ts';
import { cookiesOf } from './helpers/infra.ts';
import { serviceEnv } from './helpers/principals.ts';

describe('tiktok-sync: connect callbacks for one account racing on two instances', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sim: TikTokSimulator;
  let gate: ExchangeGate;
  let hubs: RunningTikTokSync[] = [];
  const workspaces: string[] = [];
  const newWorkspace = () => {
    const ws = uid('ws');
    workspaces.push(ws);
    return ws;
  };

  beforeAll(async () => {
    infra = await realInfra('tiktok-race-test');
    sim = await startTikTokSimulator();
    // Code exchanges only: refreshes and client tokens go straight through.
    gate = await startExchangeGate(sim.url, (method, path, body) => method === 'POST' && path.startsWith('/v2/oauth/token/') && body.includes('grant_type=authorization_code'));
    // Both behind one public address (the redirect URI TikTok compares), as behind a load balancer, as the service's own principal.
    const deployment = { ...serviceEnv('tiktok-sync'), ...simEnv(sim), TIKTOK_API_BASE_URL: gate.url, TIKTOK_SYNC_GROUP: `ionflux-tiktok-sync-${uid('r')}`, PUBLIC_BASE_URL: 'http://hub.test', TIKTOK_POLL_INTERVAL_MS: '0' };
    hubs = await Promise.all([startTikTokSync(deployment), startTikTokSync(deployment)]);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(hubs.map((h) => h.stop()));
    await forgetConnections({ vault, bus: infra?.bus, vendor: 'tiktok', connectionsTopic: CONNECTIONS_TOPIC }, workspaces);
    await gate?.close();
    await sim?.close();
    await infra?.close();
  });

  /** A browser up to TikTok's redirect back, signed in as `openId`: the connect link opened and consented, the callback not yet visited. */
  const consented = async (ws: string, openId: string) => {
    const first = await fetch(`${hubs[0]!.url}/tiktok/connect?workspace=${ws}&grant=${await connectGrant('tiktok', ws)}`, { redirect: 'manual' });
    expect(first.status).toBe(302);
    sim.consent(openId);
    const consent = await fetch(first.headers.get('location')!, { redirect: 'manual' });
    expect(consent.status).toBe(302);
    return { callback: new URL(consent.headers.get('location')!), headers: cookiesOf(first) };
  };
  const visit = async (hub: RunningTikTokSync, c: Awaited<ReturnType<typeof consented>>) => {
    const res = await fetch(`${hub.url}${c.callback.pathname}${c.callback.search}`, { redirect: 'manual', headers: c.headers });
    return { status: res.status, body: await res.text() };
  };
  /** Both callbacks at once, one per instance; both codes exchanged before either's tokens come back. */
  const race = async (a: Awaited<ReturnType<typeof consented>>, b: Awaited<ReturnType<typeof consented>>) => {
    gate.hold();
    const answers = [visit(hubs[0]!, a), visit(hubs[1]!, b)];
    await Promise.race([gate.reached(2), ...answers]);
    gate.release();
    return Promise.all(answers);
  };
  const connectionsOf = async (openId: string) => {
    const latest = new Map<string, Buffer | null>();
    for (const r of await readAll(infra.bus, CONNECTIONS_TOPIC)) latest.set(r.key!.toString(), r.value);
    return [...latest].filter(([, v]) => v && (JSON.parse(v.toString()) as { open_id: string }).open_id === openId).map(([k, v]) => [k, JSON.parse(v!.toString()) as { issued_at: number }] as const);
  };

  it('two workspaces: one callback connects the account, the other is refused (409); one link, one token, one connection, no revoke', async () => {
    const [x, y] = [newWorkspace(), newWorkspace()];
    const user = sim.addUser();
    const answers = await race(await consented(x, user.open_id), await consented(y, user.open_id));

    expect(answers.map((r) => r.status).sort(), JSON.stringify(answers)).toEqual([200, 409]);
    const [won, lost] = answers[0]!.status === 200 ? [x, y] : [y, x];
    const refused = answers.find((r) => r.status === 409)!.body;
    expect(refused).toContain(`TikTok was not connected to ${lost}`);
    // It names the workspace whose claim it read, or (fenced before that claim was written) says one was under way.
    expect(refused).toMatch(/another workspace \(.+\) right now|under way at the same moment/);
    const links = await openLinks(infra);
    expect(links.get(linkKey('tiktok', user.open_id))?.workspaceId).toBe(won);
    await links.close();
    expect((await connectionsOf(user.open_id)).map(([ws]) => ws)).toEqual([won]);
    expect(await vault.get(secretPaths.workspace(lost, 'tiktok'))).toBeNull();
    expect(sim.state.accessTokens.has((await vault.get(secretPaths.workspace(won, 'tiktok')))!.value.access_token!)).toBe(true);
    // TikTok's revoke would disconnect the app from the account altogether: the loser's token is left to expire.
    expect(sim.requests.filter((r) => r.path === '/v2/oauth/revoke/')).toEqual([]);
  }, 60_000);

  it('one workspace twice (the link opened in two tabs): one connection, the other refused (409); the stored tokens are the connected ones', async () => {
    const ws = newWorkspace();
    const user = sim.addUser();
    const answers = await race(await consented(ws, user.open_id), await consented(ws, user.open_id));

    expect(answers.map((r) => r.status).sort(), JSON.stringify(answers)).toEqual([200, 409]);
    expect(answers.find((r) => r.status === 409)!.body).toMatch(new RegExp(`another connection of this TikTok account (to ${ws} is under way|was under way at the same moment)`));
    const connections = await connectionsOf(user.open_id);
    expect(connections.map(([k]) => k)).toEqual([ws]);
    const stored = (await vault.get(secretPaths.workspace(ws, 'tiktok')))!;
    expect(JSON.parse(stored.value.meta!).issued_at).toBe(connections[0]![1].issued_at);
    expect((await readAll(infra.bus, topics.event('tiktok', ws, 'authorization', 'granted'), { atLeast: 1 })).length).toBe(1);
  }, 60_000);
});

// A removal TikTok delivers late (it retries a webhook for up to 72 h), after the user connected again.
import { readTokens } from '../services/tiktok-sync/tokens/vault.ts';

describe('tiktok-sync: authorization.removed judged by when it happened at TikTok', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sim: TikTokSimulator;
  let ingester: RunningIngester;
  let sync: RunningTikTokSync;
  const workspaces: string[] = [];
  const until = untilWith(() => sync.output.slice(-15).join('\n'));

  beforeAll(async () => {
    infra = await realInfra('tiktok-late-removal-test');
    sim = await startTikTokSimulator();
    ingester = await startIngester({ TIKTOK_CLIENT_SECRET: sim.clientSecret });
    sync = await startTikTokSync({ ...simEnv(sim), TIKTOK_SYNC_GROUP: uid('ttg'), TIKTOK_POLL_INTERVAL_MS: '0' });
  }, 180_000);

  afterAll(async () => {
    await sync?.stop();
    await ingester?.stop();
    await forgetConnections({ vault, bus: infra?.bus, vendor: 'tiktok', connectionsTopic: CONNECTIONS_TOPIC }, workspaces);
    await sim?.close();
    await infra?.close();
  });

  it('a removal that happened before the grant the workspace holds, delivered after it, leaves the tokens and the link', async () => {
    const ws = uid('ws');
    workspaces.push(ws);
    const user = sim.addUser({ videos: 1 });
    const r = await browseConnect(`${sync.url}/tiktok/connect?workspace=${ws}&grant=${await connectGrant('tiktok', ws)}`, sim, user.open_id);
    expect(r.status, r.body).toBe(200);
    const held = (await readTokens(vault, ws))!;
    await until('the ingester to route the account', async () => (await sim.sendWebhook(`${ingester.url}/webhooks/tiktok`, 'video.publish.completed', user.open_id, { share_id: `video.${uid()}` })).status === 200);
    // The user removed the app two minutes before connecting again; TikTok's retry of that event comes only now.
    const hook = await sim.sendWebhook(`${ingester.url}/webhooks/tiktok`, 'authorization.removed', user.open_id, { reason: 1 }, { createTime: Math.floor(held.issued_at / 1000) - 120 });
    expect(hook.status, hook.body).toBe(200);
    await until('tiktok-sync to handle the removal', async () => sync.output.some((l) => l.includes('authorization.removed for an account or grant this workspace no longer uses')) || (await vault.get(secretPaths.workspace(ws, 'tiktok'))) === null);
    expect(await readTokens(vault, ws)).toMatchObject({ access_token: held.access_token, issued_at: held.issued_at });
    const links = await openLinks(infra);
    expect(links.get(linkKey('tiktok', user.open_id))).toMatchObject({ workspaceId: ws });
    await links.close();
  });
});

/**
 * A refusal of old tokens racing a reconnect. The refusal checks for newer tokens, then marks the
 * connection; a reconnect finishing between the two used to be overwritten by the mark, and the
 * workspace stayed needs_reauth (commands failed) until someone connected it again.
 * `TIKTOK_TEST_REAUTH_GATE_URL` holds the owner's refusal right before it marks; a gate in front of
 * the simulator holds a command's second user.info call (with its refreshed token).
 */
describe('tiktok-sync: a refusal of old tokens racing a reconnect', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sim: TikTokSimulator;
  let apiGate: ExchangeGate;
  let gateway: Awaited<ReturnType<typeof startRefusingGateway>>;
  let sync: RunningTikTokSync;
  let client: HubClient;
  let reauthGate: Awaited<ReturnType<typeof startReauthGate>>;
  const workspaces: string[] = [];
  const newWorkspace = () => {
    const ws = uid('ws');
    workspaces.push(ws);
    return ws;
  };
  const until = untilWith(() => sync.output.slice(-15).join('\n'));
  const connect = async (ws: string, openId: string) => {
    const r = await browseConnect(`${sync.url}/tiktok/connect?workspace=${ws}&grant=${await connectGrant('tiktok', ws)}`, sim, openId);
    expect(r.status, r.body).toBe(200);
  };
  const send = (ws: string, action: string, params: Record<string, unknown> = {}) => client.send({ workspace_id: ws, agent_id: 'agent-t', service: 'tiktok', action, params }, { timeoutMs: 60_000 });
  const events = async (ws: string, entity: string, action: string, atLeast = 0, timeoutMs = 15_000) => Promise.all((await readAll(infra.bus, topics.event('tiktok', ws, entity, action), { atLeast, timeoutMs })).map(async (r) => infra.codec.decode(r.value!)));
  /** What a user sees of the connection: the command core's state, the connection record, the stored generation. */
  const seen = async (ws: string) => {
    const table = await openWorkspaceConnectors(infra);
    const state = table.get(wsConnectorKey(ws, 'tiktok'))?.connection;
    await table.close();
    let record: { status: string; issued_at: number } | undefined;
    for (const r of await readAll(infra.bus, CONNECTIONS_TOPIC)) if (r.key?.toString() === ws) record = r.value ? JSON.parse(r.value.toString()) : undefined;
    return { state, record, stored: (await readTokens(vault, ws))! };
  };

  beforeAll(async () => {
    infra = await realInfra('tiktok-reauth-race-test');
    sim = await startTikTokSimulator();
    reauthGate = await startReauthGate();
    gateway = await startRefusingGateway(sim.url);
    apiGate = await startExchangeGate(gateway.url, (method, path) => method === 'GET' && path.startsWith('/v2/user/info/'));
    sync = await startTikTokSync({
      ...serviceEnv('tiktok-sync'), ...simEnv(sim), TIKTOK_API_BASE_URL: apiGate.url,
      TIKTOK_SYNC_GROUP: `ionflux-tiktok-sync-${uid('q')}`, TIKTOK_POLL_INTERVAL_MS: '2000', TIKTOK_REFRESH_MARGIN_MS: '15000',
      TIKTOK_TEST_REAUTH_GATE_URL: reauthGate.url,
    });
    client = await createHubClient({ brokers: env.brokers, registryUrl: env.registryUrl });
  }, 180_000);

  afterAll(async () => {
    if (process.env.TIKTOK_TEST_LOG) (await import('node:fs')).writeFileSync(process.env.TIKTOK_TEST_LOG, sync?.output.join('\n') ?? '');
    await client?.close();
    await sync?.stop();
    await forgetConnections({ vault, bus: infra?.bus, vendor: 'tiktok', connectionsTopic: CONNECTIONS_TOPIC }, workspaces);
    await Promise.all([apiGate?.close(), gateway?.close(), reauthGate?.close(), sim?.close()]);
    await infra?.close();
  });

  it('a refresh refused (invalid_grant) while the admin reconnects: the reconnect stands, commands and polling go on', async () => {
    const ws = newWorkspace();
    const user = sim.addUser({ videos: 1 });
    sim.oauth.failRefresh.add(user.open_id);
    sim.nextGrantAccessTtlS(20); // refreshed at 20 s - TIKTOK_REFRESH_MARGIN_MS (15 s): refused
    reauthGate.hold();
    await connect(ws, user.open_id);
    await events(ws, 'video', 'created', 1);
    // The owner has its refusal, found no newer tokens, and is about to mark the connection: the admin reconnects now.
    await reauthGate.reached(ws);
    sim.oauth.failRefresh.delete(user.open_id);
    await connect(ws, user.open_id);
    const reconnected = (await readTokens(vault, ws))!;
    reauthGate.release();
    await until('the refusal to be handled', async () => /_token_refreshes_total\{[^}]*outcome="(adopted|needs_reauthorization)"[^}]*\} [1-9]/.test(await (await fetch(`${sync.url}/metrics`)).text()));

    const after = await seen(ws);
    expect(after.state).toBe('connected');
    expect(after.record).toMatchObject({ status: 'active', issued_at: reconnected.issued_at });
    expect(after.stored.access_token).toBe(reconnected.access_token);
    expect(await events(ws, 'authorization', 'needs_reauthorization', 0, 1000)).toHaveLength(0);
    const out = await send(ws, 'videos.list', {});
    expect(out, JSON.stringify(out.error)).toMatchObject({ status: 'succeeded' });
    // Polling goes on: a change to the account's video becomes an event.
    user.videos[0]!.like_count += 3;
    expect(await events(ws, 'video', 'updated', 1, 20_000)).toHaveLength(1);
  }, 90_000);

  it("a command's refreshed token refused while the admin reconnects: the reconnect stands and the command succeeds with its token", async () => {
    const ws = newWorkspace();
    const user = sim.addUser();
    await connect(ws, user.open_id);
    apiGate.hold();
    const out = send(ws, 'user.info', {});
    await apiGate.reached(1); // the command's first call: TikTok will refuse its token
    sim.invalidateAccessTokens(user.open_id);
    apiGate.release();
    apiGate.hold();
    await apiGate.reached(1); // its second call, with the token refreshed for it
    // TikTok will refuse that one too; before its answer is back, the admin reconnects.
    sim.invalidateAccessTokens(user.open_id);
    await connect(ws, user.open_id);
    const reconnected = (await readTokens(vault, ws))!;
    apiGate.release();

    const done = await out;
    expect(done, JSON.stringify(done.error)).toMatchObject({ status: 'succeeded', result: { user: { open_id: user.open_id } } });
    const after = await seen(ws);
    expect(after.state).toBe('connected');
    expect(after.record).toMatchObject({ status: 'active', issued_at: reconnected.issued_at });
    expect(await events(ws, 'authorization', 'needs_reauthorization', 0, 1000)).toHaveLength(0);
  }, 90_000);

  it("a command's call refused with a bare 401 while the admin reconnects: the reconnect stands and the next command succeeds", async () => {
    const ws = newWorkspace();
    const user = sim.addUser();
    await connect(ws, user.open_id);
    // A gateway in front of TikTok refuses the command's call (401, no JSON envelope): the command core marks the workspace.
    gateway.refuseNext('/v2/user/info/');
    reauthGate.hold();
    const out = send(ws, 'user.info', {});
    // The old tokens' refusal is about to be marked; the admin reconnects before the mark commits.
    await reauthGate.reached(ws);
    await connect(ws, user.open_id);
    const reconnected = (await readTokens(vault, ws))!;
    reauthGate.release();

    const refused = await out;
    expect(refused).toMatchObject({ status: 'failed', error: { code: 'vendor_unauthorized' } });
    const after = await seen(ws);
    expect(after.state).toBe('connected');
    expect(after.record).toMatchObject({ status: 'active', issued_at: reconnected.issued_at });
    expect(await events(ws, 'authorization', 'needs_reauthorization', 0, 1000)).toHaveLength(0);
    const next = await send(ws, 'user.info', {});
    expect(next, JSON.stringify(next.error)).toMatchObject({ status: 'succeeded', result: { user: { open_id: user.open_id } } });
  }, 90_000);
});

/** A gateway in front of TikTok that passes everything on, except the next call to a path, answered 401 without TikTok's envelope. */
async function startRefusingGateway(target: string) {
  const { createServer } = await import('node:http');
  const refusing = new Set<string>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => {
      void (async () => {
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        if (refusing.delete(path)) return void res.writeHead(401, { 'content-type': 'text/html' }).end('<html><body>401 Authorization Required</body></html>');
        const headers = Object.fromEntries(Object.entries(req.headers).filter(([k, v]) => typeof v === 'string' && !['host', 'content-length', 'connection'].includes(k))) as Record<string, string>;
        const body = Buffer.concat(chunks);
        const up = await fetch(`${target}${req.url}`, { method: req.method, headers, body: body.length ? new Uint8Array(body) : undefined, redirect: 'manual' });
        const back = Object.fromEntries([...up.headers].filter(([k]) => !['content-length', 'content-encoding', 'transfer-encoding', 'connection'].includes(k)));
        res.writeHead(up.status, back).end(Buffer.from(await up.arrayBuffer()));
      })().catch((e: unknown) => res.writeHead(502).end(String(e)));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`,
    refuseNext: (path: string) => void refusing.add(path),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

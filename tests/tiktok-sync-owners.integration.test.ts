import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHubClient, type HubClient } from '../shared/commands/client.ts';
import { defaultOutcomeTopic } from '../shared/commands/outcome.ts';
import { openApprovals } from '../shared/commands/state.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { secretPaths } from '../shared/secrets/store.ts';
import { CONNECTIONS_TOPIC } from '../services/tiktok-sync/state/connections.ts';
import { connectGrant, infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';
import { approveAsAdmin, browseConnect, simEnv, startTikTokSync, type RunningTikTokSync } from './helpers/tiktok.ts';
import { startTikTokSimulator, type TikTokSimulator } from './simulators/tiktok/index.ts';
import { forgetConnections } from './helpers/connections.ts';
import { until } from './helpers/until.ts';

const env = infraEnv();
const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });
const VERIFIED = 'https://media.example.com/';

const issuedAt = async (ws: string) => (JSON.parse((await vault.get(secretPaths.workspace(ws, 'tiktok')))?.value.meta ?? '{}') as { issued_at?: number }).issued_at ?? 0;

describe('tiktok-sync owners: one refresh per token across instances, one init per publish across a kill -9', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sim: TikTokSimulator;
  let client: HubClient;
  const running: RunningTikTokSync[] = [];
  const workspaces: string[] = [];
  const logs = () => running.map((r, i) => `--- instance ${i}:\n${r.output.slice(-12).join('\n')}`).join('\n');

  beforeAll(async () => {
    infra = await realInfra('tiktok-owners-test');
    sim = await startTikTokSimulator({ verifiedUrlPrefixes: [VERIFIED] });
    client = await createHubClient({ brokers: env.brokers, registryUrl: env.registryUrl });
  }, 60_000);

  afterAll(async () => {
    for (const r of running) await r.stop();
    await client?.close();
    await forgetConnections({ vault, bus: infra?.bus, vendor: 'tiktok', connectionsTopic: CONNECTIONS_TOPIC }, workspaces);
    await sim?.close();
    await infra?.close();
  });

  it('two instances, tokens near expiry: each is refreshed exactly once, before it expires, by whichever instance owns it', async () => {
    const group = uid('ttg');
    const common = { ...simEnv(sim), TIKTOK_SYNC_GROUP: group, TIKTOK_REFRESH_MARGIN_MS: '15000', TIKTOK_POLL_INTERVAL_MS: '0' };
    const a = await startTikTokSync(common);
    running.push(a);
    const b = await startTikTokSync(common);
    running.push(b);
    // Both hold partitions: the second joined, and the first took its share again after the rebalance.
    const acquired = (r: RunningTikTokSync) => r.output.filter((l) => l.includes('partition acquired')).length;
    await until('the group to settle', () => acquired(b) > 0 && acquired(a) > 3, 60_000, logs);

    const accounts = Array.from({ length: 4 }, () => ({ ws: uid('ws'), user: sim.addUser({ videos: 0 }) }));
    const connectedAt = new Map<string, number>();
    for (const { ws, user } of accounts) {
      workspaces.push(ws);
      sim.nextGrantAccessTtlS(25);
      connectedAt.set(ws, Date.now());
      const r = await browseConnect(`${a.url}/tiktok/connect?workspace=${ws}&grant=${await connectGrant('tiktok', ws)}`, sim, user.open_id);
      expect(r.status, r.body).toBe(200);
    }
    const first = new Map(await Promise.all(accounts.map(async ({ ws }) => [ws, await issuedAt(ws)] as const)));
    for (const { ws } of accounts) await until(`the refresh of ${ws}`, async () => (await issuedAt(ws)) > first.get(ws)!, 40_000, logs);

    for (const { ws, user } of accounts) {
      const attempts = sim.oauth.refreshLog.filter((x) => x.open_id === user.open_id);
      expect(attempts, user.open_id).toHaveLength(1);
      expect(attempts[0]!.ok).toBe(true);
      expect(attempts[0]!.at).toBeLessThan(connectedAt.get(ws)! + 25_000);
    }
    // The owner logs once it also recorded the connection, a moment after the store shows the new
    // token; an owner fenced in between (a rebalance) leaves the log line to nobody, and the next
    // owner adopts the stored token without refreshing. So: never more lines than refreshes.
    const refreshedLines = () => [...a.output, ...b.output].filter((l) => l.includes('tiktok token refreshed'));
    await until('the refresh log lines', () => refreshedLines().length >= accounts.length, 10_000, logs).catch(() => undefined);
    expect(refreshedLines().length).toBeLessThanOrEqual(accounts.length);
    await a.stop();
    await b.stop();
    running.length = 0;
  }, 180_000);

  it('a worker killed with SIGKILL mid-sync resumes from what it recorded: every video published once at its version (RELIABILITY 30)', async () => {
    const sync = await startTikTokSync({ ...simEnv(sim), TIKTOK_SYNC_GROUP: uid('ttg'), TIKTOK_POLL_INTERVAL_MS: '1000' });
    running.push(sync);
    const ws = uid('ws');
    workspaces.push(ws);
    const user = sim.addUser({ videos: 200 });
    sim.delay('/v2/video/list/', 400);
    const pages = () => sim.requests.filter((x) => x.path === '/v2/video/list/' && x.token !== null && sim.state.grantOf(x.token)?.open_id === user.open_id && x.status === 200).length;
    expect((await browseConnect(`${sync.url}/tiktok/connect?workspace=${ws}&grant=${await connectGrant('tiktok', ws)}`, sim, user.open_id)).status).toBe(200);
    await until('a few pages', () => pages() >= 3, 60_000, logs);
    await sync.kill();
    const done = pages();
    expect(done).toBeLessThan(10); // killed mid-sync: 200 videos are 10 pages
    sim.delay('/v2/video/list/', 0);
    await sync.start();
    const topic = `ionflux.tiktok.ws_${ws}.video.created`;
    await until('all 200 videos', async () => (await readAll(infra.bus, topic)).length >= 200, 60_000, logs);
    // Two more polls find nothing new.
    const after = pages();
    await until('two more polls', () => pages() >= after + 20, 60_000, logs);
    const events = await Promise.all((await readAll(infra.bus, topic)).map((r) => infra.codec.decode(r.value!)));
    const ids = events.map((e) => (JSON.parse(e.payload_json) as { video: { id: string } }).video.id);
    expect(ids).toHaveLength(200);
    expect(new Set(ids).size).toBe(200);
    expect(new Set(events.map((e) => e.event_id)).size).toBe(200);
    await sync.stop();
    running.length = 0;
  }, 180_000);

  it('an approved publish calls init once across a kill -9 after init; the restarted worker resumes polling and ends in one outcome', async () => {
    const sync = await startTikTokSync({ ...simEnv(sim), TIKTOK_SYNC_GROUP: uid('ttg'), TIKTOK_POLL_INTERVAL_MS: '0', TIKTOK_PUBLISH_POLL_MS: '300' });
    running.push(sync);
    const ws = uid('ws');
    workspaces.push(ws);
    const user = sim.addUser({ videos: 0 });
    expect((await browseConnect(`${sync.url}/tiktok/connect?workspace=${ws}&grant=${await connectGrant('tiktok', ws)}`, sim, user.open_id)).status).toBe(200);

    const asked = await client.send({ workspace_id: ws, agent_id: 'agent-p', service: 'tiktok', action: 'videos.publish', params: { source: 'PULL_FROM_URL', video_url: `${VERIFIED}clip-${uid()}.mp4`, title: 'Once #sim', privacy_level: 'PUBLIC_TO_EVERYONE' } }, { timeoutMs: 60_000 });
    expect(asked).toMatchObject({ status: 'awaiting_approval' });
    const approvals = await openApprovals(infra);
    await expect.poll(() => approvals.get(asked.approval_id!)?.status, { timeout: 10_000 }).toBe('pending');
    await approveAsAdmin({ bus: infra.bus, codec: infra.codec, approvals }, asked.approval_id!);
    await approvals.close();

    const status = () => sim.count('/v2/post/publish/status/fetch/');
    await until('init and status polling', () => sim.count('/v2/post/publish/video/init/') === 1 && status() >= 2, 60_000, logs);
    const publishId = [...sim.state.publishes.values()].find((p) => p.open_id === user.open_id)!.publish_id;
    expect(sim.state.publishes.get(publishId)!.status).toBe('PROCESSING_DOWNLOAD');
    await sync.kill();
    const polledBefore = status();
    await sync.start();
    // The command is redelivered to the restarted worker, which finds the publish id in its ledger.
    await until('status polling to resume', () => status() > polledBefore, 60_000, logs);
    const done = sim.finishPublish(publishId, 'PUBLISH_COMPLETE');

    const outcomeTopic = defaultOutcomeTopic('tiktok', ws);
    const finals = async () => (await Promise.all((await readAll(infra.bus, outcomeTopic)).map((r) => infra.codec.decode(r.value!)))).filter((e) => e.correlation_id === asked.command_id && !e.event_type.endsWith('awaiting_approval'));
    await until('the outcome', async () => (await finals()).length > 0, 60_000, logs);
    const all = await finals();
    const [outcome, ...more] = all;
    expect(more, `outcomes: ${JSON.stringify(all.map((e) => ({ id: e.event_id, type: e.event_type, at: e.timestamp, payload: e.payload_json })))}\n${logs()}`).toHaveLength(0);
    expect(outcome!.event_type).toBe('tiktok.command.succeeded');
    expect(JSON.parse(outcome!.payload_json)).toMatchObject({ status: 'succeeded', result: { publish_id: publishId, status: 'PUBLISH_COMPLETE', status_source: 'poll', post_ids: [done.post_id] } });
    expect(sim.count('/v2/post/publish/video/init/')).toBe(1);
    expect(sim.state.publishes.size).toBe(1);
  }, 180_000);
});

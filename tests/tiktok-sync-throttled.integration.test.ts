import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaTable } from '../shared/bus/table/table.ts';
import { topics } from '../shared/bus/topics.ts';
import { createHubClient, type HubClient } from '../shared/commands/client.ts';
import { commandKey, openCommandStates, type CommandState } from '../shared/commands/state.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { CONNECTIONS_TOPIC } from '../services/tiktok-sync/state/connections.ts';
import { forgetConnections } from './helpers/connections.ts';
import { connectGrant, infraEnv, realInfra, uid } from './helpers/infra.ts';
import { browseConnect, simEnv, startTikTokSync, type RunningTikTokSync } from './helpers/tiktok.ts';
import { untilWith } from './helpers/until.ts';
import { startTikTokSimulator, type TikTokSimulator } from './simulators/tiktok/index.ts';

const env = infraEnv();
const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });

/**
 * RELIABILITY items 13 and 33 for TikTok: a command waits for TikTok's limit (the hub's limiter:
 * the endpoint's calls of the last minute are used up). That wait used to be slept in the handler,
 * inside the worker's batch, so a command another workspace sent meanwhile waited for it too. Now,
 * on the workspace's own command topic, the wait goes to the command core, which pauses only that
 * topic.
 */
describe('tiktok-sync: TikTok limits one workspace (items 13, 33)', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sim: TikTokSimulator;
  let sync: RunningTikTokSync;
  let client: HubClient;
  let states: KafkaTable<CommandState>;
  const workspaces: string[] = [];
  const until = untilWith(() => `simulator saw: ${sim.requests.slice(-10).map((x) => `${x.method} ${x.path} ${x.status}`).join(', ')}\n${sync.output.slice(-15).join('\n')}`);

  beforeAll(async () => {
    infra = await realInfra('tiktok-throttled-workspace-test');
    sim = await startTikTokSimulator();
    sync = await startTikTokSync({
      ...simEnv(sim),
      TIKTOK_SYNC_GROUP: uid('ttg'),
      TIKTOK_POLL_INTERVAL_MS: '0',
      // One video query a minute for the app (TikTok allows 600): a second one waits for the window.
      TIKTOK_RATE_LIMITS: JSON.stringify({ 'video.query': 1 }),
      // The command core honours the whole wait at once.
      TIKTOK_RETRY_MAX_WAIT_MS: '70000',
    });
    // As agents send: on each workspace's own command topic.
    client = await createHubClient({ brokers: env.brokers, registryUrl: env.registryUrl, commandTopics: 'workspace' });
    states = await openCommandStates(infra, 'tiktok');
  }, 180_000);

  afterAll(async () => {
    await client?.close();
    await states?.close();
    await sync?.stop();
    await forgetConnections({ vault, bus: infra?.bus, vendor: 'tiktok', connectionsTopic: CONNECTIONS_TOPIC }, workspaces);
    await sim?.close();
    await infra?.close();
  });

  it("a command sent while another workspace's command waits for TikTok's limit completes first, on the same worker; the waiting one then runs once", async () => {
    const [a, b] = [uid('ws'), uid('ws')];
    workspaces.push(a, b);
    const [userA, userB] = [sim.addUser({ videos: 2 }), sim.addUser({ videos: 1 })];
    for (const [ws, user] of [[a, userA], [b, userB]] as const) {
      const r = await browseConnect(`${sync.url}/tiktok/connect?workspace=${ws}&grant=${await connectGrant('tiktok', ws)}`, sim, user.open_id);
      expect(r.status, r.body).toBe(200);
    }
    await infra.bus.ensureTopics([topics.workspaceCommand('tiktok', a), topics.workspaceCommand('tiktok', b)]);
    const order: string[] = [];
    const send = (ws: string, action: string, params: Record<string, unknown>, commandId?: string) =>
      client.send({ workspace_id: ws, agent_id: 'agent-t', service: 'tiktok', action, params, ...(commandId ? { command_id: commandId } : {}) }, { timeoutMs: 150_000 })
        .then((out) => (order.push(`${ws}:${action}:${out.status}`), out));
    // One command of each first, so the worker has found both topics before the test.
    for (const ws of [a, b]) expect(await send(ws, 'user.info', { fields: ['open_id', 'display_name'] })).toMatchObject({ status: 'succeeded' });
    const query = { video_ids: [userA.videos[0]!.id] };
    // A's first query takes the minute's one call.
    expect(await send(a, 'videos.query', query)).toMatchObject({ status: 'succeeded' });
    const queries = () => sim.count('/v2/video/query/');
    expect(queries()).toBe(1);
    order.length = 0;

    const waiting = randomUUID();
    const outA = send(a, 'videos.query', query, waiting);
    // A's second query must wait for the window (about a minute): its state says when it runs again.
    await until("A's second query to be deferred (its state's retry)", () => states.get(commandKey(a, waiting))?.retry !== undefined, 30_000);
    const outB = await Promise.all([send(b, 'user.info', { fields: ['open_id'] }), send(b, 'videos.list', {})]);
    expect(outB.map((o) => o.status)).toEqual(['succeeded', 'succeeded']);
    // B's were answered while A still waited: A's query had not reached TikTok, and has no outcome.
    expect(queries()).toBe(1);
    expect(order).toEqual([`${b}:user.info:succeeded`, `${b}:videos.list:succeeded`]);

    expect(await outA).toMatchObject({ status: 'succeeded', attempts: 2, result: { videos: [expect.objectContaining({ id: userA.videos[0]!.id })] } });
    // The wait sent nothing: one more query reached TikTok, the one that answered.
    expect(queries()).toBe(2);
    expect(order).toEqual([`${b}:user.info:succeeded`, `${b}:videos.list:succeeded`, `${a}:videos.query:succeeded`]);
  }, 240_000);
});

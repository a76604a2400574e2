import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafka } from '../shared/bus/kafka/client.ts';
import { topics } from '../shared/bus/topics.ts';
import { createHubClient, type HubClient, type Outcome } from '../shared/commands/client.ts';
import { createLogger } from '../shared/logger.ts';
import { infraEnv, realInfra, uid } from './helpers/infra.ts';
import { startOrchestrator, type RunningOrchestrator } from './helpers/llm.ts';
import { startOpenAISimulator, type OpenAISimulator } from './simulators/openai.ts';

const env = infraEnv();
const apiKey = `sk-platform-${randomBytes(18).toString('hex')}`;
/** Commands per stream: enough that the two instances' calls overlap many times over. */
const N = 12;

/**
 * Two orchestrator instances of one group, each owning one of a workspace's two command
 * partitions (the service's topic, the workspace's own topic): both count the workspace's spend at
 * the same time. Every billed call must be in the total the workspace is shown.
 */
describe('llm orchestrator: spend of one workspace counted by two instances at once', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let openai: OpenAISimulator;
  let admin: ReturnType<ReturnType<typeof createKafka>['admin']>;
  const orchestrators: RunningOrchestrator[] = [];
  const clients: HubClient[] = [];
  // A service of its own: its command topic, workspace topic, group and spend topic are this test's alone.
  const service = uid('llmspend');
  const ws = uid('ws');
  const group = `ionflux-${service}-worker`;

  /** Members of the group, once it is stable (none while it rebalances). */
  const members = async () => {
    const [g] = (await admin.describeGroups([group])).groups;
    return g?.state === 'Stable' ? g.members.length : 0;
  };

  beforeAll(async () => {
    infra = await realInfra('llm-spend-test');
    openai = await startOpenAISimulator({ name: 'openai-sim', keys: [apiKey] });
    admin = createKafka({ brokers: env.brokers, auth: env.auth, clientId: uid('llm-spend-admin'), logger: createLogger({ service: 'test-admin', level: 'silent' }) }).admin();
    await admin.connect();
    // One partition each, there before the instances join: the group's two partitions go one to
    // each (round robin). Which instance made which calls is checked from their logs below.
    await admin.createTopics({ topics: [topics.command(service), topics.workspaceCommand(service, ws)].map((topic) => ({ topic, numPartitions: 1 })), waitForLeaders: true });
    const orchestratorEnv = { LLM_SERVICE: service, OPENAI_BASE_URL: openai.url, OPENAI_API_KEY: apiKey, LOG_LEVEL: 'debug' };
    orchestrators.push(...(await Promise.all([startOrchestrator(orchestratorEnv), startOrchestrator(orchestratorEnv)])));
    for (const deadline = Date.now() + 60_000; (await members()) !== 2; ) {
      if (Date.now() > deadline) throw new Error('the two instances did not form a stable group');
      await new Promise((r) => setTimeout(r, 250));
    }
    clients.push(
      await createHubClient({ brokers: env.brokers, auth: env.auth, registryUrl: env.registryUrl, commandTopics: 'service' }),
      await createHubClient({ brokers: env.brokers, auth: env.auth, registryUrl: env.registryUrl, commandTopics: 'workspace' }),
    );
  }, 240_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(orchestrators.map((o) => o.stop()));
    await admin?.disconnect();
    await Promise.all([openai?.close(), infra?.close()]);
  });

  it('N calls on the service topic and N on the workspace topic, run by two instances at once: llm.get_budget reports the sum of all 2N costs, and the spend topic counts 2N calls', async () => {
    const send = (client: HubClient, action: string, params: Record<string, unknown>) => client.send({ workspace_id: ws, agent_id: 'agent-7', service, action, params }, { timeoutMs: 60_000 });
    // Each stream one call after another (a workspace's commands on one partition run in order); the two streams at once.
    const stream = async (client: HubClient, name: string) => {
      const outs: Outcome[] = [];
      for (let i = 0; i < N; i++) outs.push(await send(client, 'text_generation', { model: 'gpt-4o-mini', prompt: `${name} call ${i}: ${'words '.repeat(1 + ((i * 7) % 13))}` }));
      return outs;
    };
    const outs = (await Promise.all(clients.map((c, i) => stream(c, i === 0 ? 'service topic' : 'workspace topic')))).flat();
    expect(outs.map((o) => o.status)).toEqual(Array(2 * N).fill('succeeded'));
    const costs = outs.map((o) => (o.result as { cost_usd: number }).cost_usd);
    expect(costs.every((c) => c > 0)).toBe(true);
    const total = Math.round(costs.reduce((a, b) => a + b, 0) * 1e8) / 1e8;

    // The setup did what it says: each instance made the calls of one stream.
    const callsBy = orchestrators.map((o) => o.output.filter((l) => l.includes('"llm call completed"')).length);
    expect(callsBy.sort()).toEqual([N, N]);

    // Another instance's totals reach an instance's table within about 100 ms: asked until it counts
    // them all (or for 20 s), then it must report exactly the sum, which no lost count reaches.
    type View = { spent_today_usd: number; spent_month_usd: number };
    let view: View | undefined;
    for (const deadline = Date.now() + 20_000; ; ) {
      const out = await send(clients[0]!, 'get_budget', {});
      expect(out.status).toBe('succeeded');
      view = out.result as View;
      if (view.spent_today_usd >= total || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(view).toMatchObject({ spent_today_usd: total, spent_month_usd: total });

    // The spend topic holds every call: the workspace's latest day totals add up to 2N calls.
    const latest = new Map<string, { usd: number; calls: number }>();
    for (const r of await infra.bus.readToEnd(topics.state(`${service}-spend`))) if (r.key?.toString().startsWith(`${ws}:`)) latest.set(r.key.toString(), JSON.parse(r.value!.toString()));
    const days = [...latest].filter(([k]) => /^[^:]+:\d{4}-\d{2}-\d{2}(:|$)/.test(k)).map(([, v]) => v);
    expect(days.reduce((n, d) => n + d.calls, 0)).toBe(2 * N);
    expect(Math.round(days.reduce((n, d) => n + d.usd, 0) * 1e8) / 1e8).toBe(total);
  });
});

import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DLQ_HEADERS } from '../shared/bus/dead-letter.ts';
import type { KafkaTable } from '../shared/bus/table/table.ts';
import { topics } from '../shared/bus/topics.ts';
import { createHubClient, type HubClient } from '../shared/commands/client.ts';
import { defaultOutcomeTopic } from '../shared/commands/outcome.ts';
import { COMMAND_SUBJECT } from '../shared/commands/envelope.ts';
import type { PlatformEvent } from '../shared/events/platform-event.ts';
import { createRegistry, registerAvro } from '../shared/events/registry.ts';
import { openApprovals, openWorkspaceConnectors, WORKSPACE_POLICY, wsConnectorKey, type Approval, type WorkspaceConnector } from '../shared/commands/state.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { secretPaths } from '../shared/secrets/store.ts';
import { runCli } from './helpers/cli.ts';
import { infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';
import { startReceiver } from './helpers/receiver.ts';
import { startWorker, type RunningWorker } from './helpers/worker.ts';

const env = infraEnv();
const signingSecret = `whsec_${randomBytes(32).toString('base64')}`;

describe('command plane: webhook.post through a worker process, real Kafka, registry and OpenBao', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let worker: RunningWorker;
  let client: HubClient;
  let approvals: KafkaTable<Approval>;
  let settings: KafkaTable<WorkspaceConnector>;
  const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });
  const ws = uid('ws');

  const post = (path: string, extra: Record<string, unknown> = {}) =>
    client.send({ workspace_id: ws, agent_id: 'agent-1', service: 'webhook', action: 'post', params: { url: receiver.url(path), payload: { hello: 'world' } }, ...extra }, { timeoutMs: 60_000 });

  /**
   * Subscribes now (awaited, so the subscription starts before whatever the test does next) and
   * resolves with the first matching event; a clear error, with the worker's last lines, after 30 s.
   */
  async function nextEvent(topic: string, match: (e: PlatformEvent) => boolean): Promise<{ event: Promise<PlatformEvent> }> {
    let found!: (e: PlatformEvent) => void;
    const event = new Promise<PlatformEvent>((resolve) => (found = resolve));
    const sub = await client.subscribe(topic, (e) => void (match(e) && found(e)));
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no matching event on ${topic} within 30 s; worker said:\n${worker.output.slice(-15).join('\n')}`)), 30_000).unref());
    const first = Promise.race([event, timeout]).finally(() => void sub.close());
    first.catch(() => undefined); // reported where it is awaited
    return { event: first };
  }

  async function allow(paths: string[], preapproved: string[]) {
    await settings.set(wsConnectorKey(ws, 'webhook'), { settings: { urls: paths.map(receiver.url), preapproved: preapproved.map(receiver.url) }, connection: 'connected', updated_at: new Date().toISOString() });
  }

  beforeAll(async () => {
    infra = await realInfra('commands-test');
    receiver = await startReceiver();
    await vault.put(secretPaths.workspace(ws, 'webhook'), { signing_secret: signingSecret });
    [approvals, settings] = await Promise.all([openApprovals(infra), openWorkspaceConnectors(infra)]);
    worker = await startWorker({ RETRY_MAX_WAIT_MS: '3000', EXTRA_CONNECTORS_DIR: 'tests/fixtures/connectors' });
    client = await createHubClient({ brokers: env.brokers, auth: env.auth, registryUrl: env.registryUrl });
  }, 180_000);
  afterAll(async () => {
    await client?.close();
    await worker?.stop();
    await approvals?.close();
    await settings?.close();
    await receiver?.close();
    await infra?.close();
  });

  it('posts a signed body to a pre-approved URL once and answers with a succeeded outcome; a duplicate gets the same outcome', async () => {
    await allow(['/ok'], ['/ok']);
    const id = randomUUID();
    const out = await post('/ok', { command_id: id });
    expect(out).toMatchObject({ status: 'succeeded', command_id: id, result: { status: 200, webhook_id: id }, attempts: 1 });
    expect(out.event.event_type).toBe('webhook.command.succeeded');
    const d = receiver.deliveries.find((x) => x.path === '/ok')!;
    const key = Buffer.from(signingSecret.slice('whsec_'.length), 'base64');
    const expected = createHmac('sha256', key).update(`${id}.${d.headers['webhook-timestamp']}.${d.body}`).digest('base64');
    expect(d.headers['webhook-signature']).toBe(`v1,${expected}`);
    expect(JSON.parse(d.body)).toMatchObject({ workspace_id: ws, data: { hello: 'world' } });

    const again = await post('/ok', { command_id: id });
    expect(again.event.event_id).toBe(out.event.event_id);
    expect(receiver.count('/ok')).toBe(1);
  });

  it('registers every action\'s input and output schema in the registry as JSON Schema', async () => {
    for (const side of ['input', 'output']) {
      const res = await fetch(`${env.registryUrl}/subjects/ionflux.connector.webhook.post.${side}/versions/latest`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { schemaType?: string; schema: string };
      expect(body.schemaType).toBe('JSON');
      expect(JSON.parse(body.schema).type).toBe('object');
    }
  });

  it('accepts a Confluent-framed Avro command as well as JSON', async () => {
    await allow(['/avro'], ['/avro']);
    const registry = createRegistry(env.registryUrl);
    const schemaId = await registerAvro(registry, COMMAND_SUBJECT, await readFile('schemas/command.avsc', 'utf8'));
    const id = randomUUID();
    const topic = defaultOutcomeTopic('webhook', ws);
    const got = (await nextEvent(topic, (e) => e.correlation_id === id)).event.then((e) => JSON.parse(e.payload_json) as { status: string });
    const value = await registry.encode(schemaId, { command_id: id, workspace_id: ws, agent_id: 'avro-agent', service: 'webhook', action: 'post', params_json: JSON.stringify({ url: receiver.url('/avro'), payload: { n: 1 } }), reply_to: null, approval_id: null, deadline: null });
    await infra.bus.publish({ topic: topics.command('webhook'), key: ws, value });
    expect(await got).toMatchObject({ status: 'succeeded' });
    expect(receiver.count('/avro')).toBe(1);
  });

  it('refuses an agent that approves through ionflux.cmd.platform, audits it, and runs nothing (RELIABILITY 22)', async () => {
    await allow(['/platform'], []);
    const waiting = await post('/platform');
    await expect.poll(() => approvals.get(waiting.approval_id!)?.status, { timeout: 10_000 }).toBe('pending');
    const audited = (await nextEvent(topics.audit, (e) => e.event_type === 'platform.audit.action_failed' && JSON.parse(e.payload_json).action === 'approvals.approve' && e.workspace_id === ws)).event;
    // An agent principal may not write ionflux.cmd.platform at all (the broker refuses it:
    // tests/principals.integration.test.ts). What an agent's own topic would carry is written here
    // by the admin: the worker counts everything on a workspace's command topic as an agent's.
    const asAgent = await createHubClient({ brokers: env.brokers, auth: env.auth, registryUrl: env.registryUrl, commandTopics: 'workspace' });
    try {
      for (const workspace_id of [ws, uid('ws')]) {
        const refused = await asAgent.send({ workspace_id, agent_id: 'agent-1', service: 'platform', action: 'approvals.approve', params: { approval_id: waiting.approval_id } }, { timeoutMs: 60_000 });
        expect(refused).toMatchObject({ status: 'failed', error: { code: 'forbidden_principal' } });
      }
    } finally {
      await asAgent.close();
    }
    expect(JSON.parse((await audited).payload_json)).toMatchObject({ outcome: 'forbidden_principal', actor: 'agent-1' });
    expect(approvals.get(waiting.approval_id!)?.status).toBe('pending');
    await new Promise((r) => setTimeout(r, 1000));
    expect(receiver.count('/platform')).toBe(0);
  });

  it('keeps an external write without approval as awaiting_approval, sends it once approved, and fails a denied one (item 17)', async () => {
    await allow(['/gated', '/denied'], []);
    const waiting = await post('/gated');
    expect(waiting).toMatchObject({ status: 'awaiting_approval', approval_id: expect.stringMatching(/^apr_/) });
    expect(receiver.count('/gated')).toBe(0);
    await expect.poll(() => approvals.get(waiting.approval_id!)?.status, { timeout: 10_000 }).toBe('pending');

    const released = (await nextEvent(defaultOutcomeTopic('webhook', ws), (e) => e.correlation_id === waiting.command_id && e.event_type.endsWith('succeeded'))).event;
    expect((await runCli(['approvals', 'approve', waiting.approval_id!])).code).toBe(0);
    await released;
    expect(receiver.count('/gated')).toBe(1);
    const twice = await runCli(['approvals', 'approve', waiting.approval_id!]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/already/);

    const other = await post('/denied');
    await expect.poll(() => approvals.get(other.approval_id!)?.status, { timeout: 10_000 }).toBe('pending');
    const denied = (await nextEvent(defaultOutcomeTopic('webhook', ws), (e) => e.correlation_id === other.command_id && e.event_type.endsWith('failed'))).event.then((e) => JSON.parse(e.payload_json) as unknown);
    expect((await runCli(['approvals', 'deny', other.approval_id!, '--reason', 'not today'])).code).toBe(0);
    expect(await denied).toMatchObject({ error: { code: 'approval_denied' } });
    expect(receiver.count('/denied')).toBe(0);
  });

  it('refuses a financial action unless the workspace enabled it (item 17)', async () => {
    const refund = () => client.send({ workspace_id: ws, agent_id: 'agent-1', service: 'payments', action: 'refund', params: { order_id: '1', amount: '9.99' } }, { timeoutMs: 60_000 });
    expect(await refund()).toMatchObject({ status: 'failed', error: { code: 'financial_actions_disabled' } });
    // No wait for the worker's table: a financial action is decided on the settings as they are
    // now (the pipeline reads the table to its end first).
    await settings.set(wsConnectorKey(ws, WORKSPACE_POLICY), { settings: {}, financial_actions_enabled: true, updated_at: new Date().toISOString() });
    // Enabled, it still waits for an admin's approval (its gate is external_write), then runs.
    const waiting = await refund();
    expect(waiting).toMatchObject({ status: 'awaiting_approval', approval_id: expect.stringMatching(/^apr_/) });
    await expect.poll(() => approvals.get(waiting.approval_id!)?.status, { timeout: 10_000 }).toBe('pending');
    const released = (await nextEvent(defaultOutcomeTopic('payments', ws), (e) => e.correlation_id === waiting.command_id && e.event_type.endsWith('succeeded'))).event;
    expect((await runCli(['approvals', 'approve', waiting.approval_id!])).code).toBe(0);
    expect(JSON.parse((await released).payload_json)).toMatchObject({ status: 'succeeded', result: { refunded: '9.99' } });
  }, 120_000);

  it('answers invalid JSON, an unknown action, bad params and an expired deadline with a failed outcome and a dead letter of the original bytes (item 12)', async () => {
    await allow(['/ok'], ['/ok']);
    const bad = Buffer.from('{"command_id": "x", not json');
    await infra.bus.publish({ topic: topics.command('webhook'), key: ws, value: bad });
    const cases = await Promise.all([
      client.send({ workspace_id: ws, agent_id: 'a', service: 'webhook', action: 'explode', params: {} }, { timeoutMs: 60_000 }),
      client.send({ workspace_id: ws, agent_id: 'a', service: 'webhook', action: 'post', params: { url: 42 } }, { timeoutMs: 60_000 }),
      post('/ok', { deadline: new Date(Date.now() - 1000).toISOString() }),
    ]);
    expect(cases.map((c) => c.error?.code)).toEqual(['unknown_action', 'invalid_params', 'deadline_exceeded']);
    const dead = await readAll(infra.bus, topics.deadLetter('webhook'), { atLeast: 4 });
    const mine = dead.filter((r) => r.key?.toString() === ws);
    expect(mine.map((r) => r.headers[DLQ_HEADERS.errorClass]).sort()).toEqual(expect.arrayContaining(['deadline_exceeded', 'invalid_command', 'invalid_params', 'unknown_action']));
    expect(mine.find((r) => r.headers[DLQ_HEADERS.errorClass] === 'invalid_command')!.value!.equals(bad)).toBe(true);
    const outcomes = await readAll(infra.bus, defaultOutcomeTopic('webhook', ws), { atLeast: 1 });
    const decoded = await Promise.all(outcomes.map((r) => infra.codec.decode(r.value!)));
    expect(decoded.some((e) => JSON.parse(e.payload_json).error?.code === 'invalid_command')).toBe(true);
  });

  it('fails with not_connected and the auth help when the workspace has no credentials, and the worker keeps running', async () => {
    const other = uid('ws');
    const out = await client.send({ workspace_id: other, agent_id: 'a', service: 'webhook', action: 'post', params: { url: receiver.url('/ok'), payload: {} } }, { timeoutMs: 60_000 });
    expect(out).toMatchObject({ status: 'failed', error: { code: 'not_connected', auth_help: expect.stringContaining('ionflux connect webhook') } });
  });

  it('honours 429 Retry-After and then succeeds; dead-letters after the retry budget on 503 (item 13)', async () => {
    await allow(['/busy', '/down'], ['/busy', '/down']);
    receiver.script('/busy', [{ status: 429, headers: { 'retry-after': '1' } }]);
    const started = Date.now();
    const ok = await post('/busy');
    expect(ok).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    receiver.script('/down', Array.from({ length: 10 }, () => ({ status: 503 })));
    const down = await post('/down');
    expect(down).toMatchObject({ status: 'failed', attempts: 4, error: { code: 'vendor_unavailable', retryable: true } });
    expect(receiver.count('/down')).toBe(4);
  }, 120_000);

  it('does not retry 400, 410 or 401, and marks the connection as needing re-authorization on 401 (item 14)', async () => {
    await allow(['/c400', '/c410', '/c401'], ['/c400', '/c410', '/c401']);
    for (const status of [400, 410]) {
      receiver.script(`/c${status}`, [{ status }]);
      expect(await post(`/c${status}`)).toMatchObject({ status: 'failed', attempts: 1, error: { code: `vendor_http_${status}` } });
      expect(receiver.count(`/c${status}`)).toBe(1);
    }
    receiver.script('/c401', [{ status: 401 }]);
    expect(await post('/c401')).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'vendor_unauthorized' } });
    await expect.poll(() => settings.get(wsConnectorKey(ws, 'webhook'))?.connection, { timeout: 10_000 }).toBe('needs_reauth');
    expect(await post('/c400')).toMatchObject({ status: 'failed', error: { code: 'needs_reauthorization' } });
  });

  it('calls the vendor once when the worker is SIGKILLed after the call and before the commit, and on dead-letter replay (items 10, 15)', async () => {
    await allow(['/crash'], ['/crash']);
    receiver.onRequest('/crash', () => process.kill(worker.pid(), 'SIGKILL'));
    const id = randomUUID();
    const pending = post('/crash', { command_id: id });
    await expect.poll(() => receiver.count('/crash'), { timeout: 30_000 }).toBe(1);
    await worker.kill();
    receiver.onRequest('/crash', () => undefined);
    await worker.start();
    const out = await pending;
    expect(out.command_id).toBe(id);
    expect(out).toMatchObject({ status: 'failed', error: { code: 'outcome_unknown' } });
    expect(receiver.count('/crash')).toBe(1);

    // Replaying the command (as `ionflux dlq replay` or an offset reset would) repeats nothing.
    const replay = await post('/crash', { command_id: id });
    expect(replay.event.event_id).toBe(out.event.event_id);
    expect(receiver.count('/crash')).toBe(1);
  }, 180_000);

  it('calls the vendor once and keeps one outcome when the worker is SIGKILLed after the vendor answered, before the offset commit (item 10)', async () => {
    await allow(['/answered', '/after'], ['/answered', '/after']);
    const id = randomUUID();
    expect(await post('/answered', { command_id: id })).toMatchObject({ status: 'succeeded' });
    // At once: offsets are committed in the background (every 500 ms), after the outcome.
    await worker.kill();
    await worker.start();
    // A later command of the workspace shares the partition: its outcome comes after the killed
    // one's record was taken up again by the restarted worker.
    expect(await post('/after')).toMatchObject({ status: 'succeeded' });
    expect(receiver.count('/answered')).toBe(1);
    const outcomes = await Promise.all((await readAll(infra.bus, defaultOutcomeTopic('webhook', ws), { atLeast: 1 })).map((r) => infra.codec.decode(r.value!)));
    const mine = outcomes.filter((e) => e.correlation_id === id);
    // Published again on a redelivery at most, as the same event (consumers dedupe by event id).
    expect(new Set(mine.map((e) => e.event_id)).size).toBe(1);
    expect(mine[0]!.event_type).toBe('webhook.command.succeeded');
  }, 180_000);

  it('loses nothing and duplicates nothing across a clean rolling restart under load (item 11)', async () => {
    await allow(['/load'], ['/load']);
    const ids = Array.from({ length: 60 }, () => randomUUID());
    const outcomes = ids.map((id, i) => new Promise((r) => setTimeout(r, i * 50)).then(() => post('/load', { command_id: id })));
    await new Promise((r) => setTimeout(r, 1000));
    await worker.stop();
    await worker.start();
    const results = await Promise.all(outcomes);
    expect(results.every((r) => r.status === 'succeeded')).toBe(true);
    expect(receiver.count('/load')).toBe(60);
    const ids2 = new Set(receiver.deliveries.filter((d) => d.path === '/load').map((d) => d.headers['webhook-id']));
    expect(ids2.size).toBe(60);
  }, 180_000);
});

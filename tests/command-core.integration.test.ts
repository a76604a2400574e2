import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DLQ_HEADERS } from '../shared/bus/dead-letter.ts';
import { createKafka } from '../shared/bus/kafka/client.ts';
import type { KafkaTable } from '../shared/bus/table/table.ts';
import { topics } from '../shared/bus/topics.ts';
import { createHubClient, type HubClient } from '../shared/commands/client.ts';
import { encodeCommandJson } from '../shared/commands/envelope.ts';
import { defaultOutcomeTopic } from '../shared/commands/outcome.ts';
import { RELEASE_HEADER } from '../shared/commands/release.ts';
import { openApprovals, openWorkspaceConnectors, wsConnectorKey, type Approval, type WorkspaceConnector } from '../shared/commands/state.ts';
import type { PlatformEvent } from '../shared/events/platform-event.ts';
import { secretPaths } from '../shared/secrets/store.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { runCli } from './helpers/cli.ts';
import { freePort } from './helpers/ingester.ts';
import { infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';
import { startReceiver } from './helpers/receiver.ts';
import { startWorker, type RunningWorker } from './helpers/worker.ts';

const env = infraEnv();

/**
 * Command core v2 (issue 8): approvals bound to the exact command, each worker running only its
 * own connector, one outcome on every path, and no replay past the dedupe window. Against a
 * connector-worker process, the real broker, registry and OpenBao.
 */
describe('command core: approvals, outcomes on every path, expiry', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let worker: RunningWorker;
  let client: HubClient;
  let approvals: KafkaTable<Approval>;
  let settings: KafkaTable<WorkspaceConnector>;
  const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });
  const ws = uid('ws');

  const send = (command: { service: string; action: string; params: Record<string, unknown>; command_id?: string; approval_id?: string }, workspace_id = ws) =>
    client.send({ workspace_id, agent_id: 'agent-1', ...command }, { timeoutMs: 60_000 });
  const post = (path: string, command_id = randomUUID()) => send({ service: 'webhook', action: 'post', command_id, params: { url: receiver.url(path), payload: { to: path } } });

  /** Every outcome of `commandId` on the workspace's outcome topic, decoded. */
  async function outcomesOf(service: string, commandId: string, atLeast: number) {
    const records = await readAll(infra.bus, defaultOutcomeTopic(service, ws), { atLeast, timeoutMs: 5000 });
    const events = await Promise.all(records.map((r) => infra.codec.decode(r.value!)));
    return events.filter((e) => e.correlation_id === commandId).map((e) => JSON.parse(e.payload_json) as { status: string; error?: { code: string } });
  }

  /** Subscribes now; `event` resolves with the first matching event published after this call. */
  async function next(topic: string, match: (e: PlatformEvent) => boolean): Promise<{ event: Promise<PlatformEvent> }> {
    let found!: (e: PlatformEvent) => void;
    const event = new Promise<PlatformEvent>((r) => (found = r));
    const sub = await client.subscribe(topic, (e) => void (match(e) && found(e)));
    return { event: event.finally(() => void sub.close()) };
  }

  beforeAll(async () => {
    infra = await realInfra('command-core-test');
    receiver = await startReceiver();
    await vault.put(secretPaths.workspace(ws, 'webhook'), { signing_secret: `whsec_${randomBytes(32).toString('base64')}` });
    [approvals, settings] = await Promise.all([openApprovals(infra), openWorkspaceConnectors(infra)]);
    await settings.set(wsConnectorKey(ws, 'webhook'), { settings: { urls: ['/a', '/b', '/c', '/d', '/e'].map(receiver.url), preapproved: [] }, connection: 'connected', updated_at: new Date().toISOString() });
    worker = await startWorker({ RETRY_MAX_WAIT_MS: '1000', EXTRA_CONNECTORS_DIR: 'tests/fixtures/connectors' });
    client = await createHubClient({ brokers: env.brokers, auth: env.auth, registryUrl: env.registryUrl });
  }, 180_000);
  afterAll(async () => {
    await client?.close();
    await worker?.stop();
    await Promise.all([approvals?.close(), settings?.close()]);
    await receiver?.close();
    await infra?.close();
  });

  it('runs exactly what the admin approved: the same id with other params and the approval id fails approval_mismatch, audited (RELIABILITY 23)', async () => {
    const id = randomUUID();
    const waiting = await post('/a', id);
    expect(waiting).toMatchObject({ status: 'awaiting_approval' });
    const { event: audited } = await next(topics.audit, (e) => e.correlation_id === id && JSON.parse(e.payload_json).outcome === 'approval_mismatch');
    const swapped = await send({ service: 'webhook', action: 'post', command_id: id, approval_id: waiting.approval_id, params: { url: receiver.url('/b'), payload: { to: '/b' } } });
    expect(swapped).toMatchObject({ status: 'failed', error: { code: 'approval_mismatch' } });
    await audited;

    const { event: released } = await next(defaultOutcomeTopic('webhook', ws), (e) => e.correlation_id === id && e.event_type.endsWith('succeeded'));
    expect((await runCli(['approvals', 'approve', waiting.approval_id!])).code).toBe(0);
    await released;
    expect(receiver.count('/a')).toBe(1);
    expect(receiver.count('/b')).toBe(0);
  });

  it('refuses a release an agent wrote itself, and a real signed release moved onto other content (RELIABILITY 22, 23)', async () => {
    const waiting = await post('/c');
    // The agent re-sends its own command with the approval id: no admin signed it.
    const forged = await send({ service: 'webhook', action: 'post', command_id: waiting.command_id, approval_id: waiting.approval_id, params: { url: receiver.url('/c'), payload: { to: '/c' } } });
    expect(forged).toMatchObject({ status: 'failed', error: { code: 'forbidden_principal' } });
    expect(approvals.get(waiting.approval_id!)?.status).toBe('pending');

    // An admin approves it; the agent copies that signed header onto a command of its own.
    const { event: released } = await next(defaultOutcomeTopic('webhook', ws), (e) => e.correlation_id === waiting.command_id && e.event_type.endsWith('succeeded'));
    expect((await runCli(['approvals', 'approve', waiting.approval_id!])).code).toBe(0);
    await released;
    const cmdRecords = await readAll(infra.bus, topics.command('webhook'));
    const header = cmdRecords.find((r) => r.headers[RELEASE_HEADER] && JSON.parse(r.value!.toString()).approval_id === waiting.approval_id)!.headers[RELEASE_HEADER]!;
    const other = randomUUID();
    const { event: outcome } = await next(defaultOutcomeTopic('webhook', ws), (e) => e.correlation_id === other);
    const value = encodeCommandJson({ command_id: other, workspace_id: ws, agent_id: 'agent-1', service: 'webhook', action: 'post', approval_id: waiting.approval_id, params: { url: receiver.url('/d'), payload: { to: '/d' } } });
    await infra.bus.publish({ topic: topics.command('webhook'), key: ws, value, headers: { [RELEASE_HEADER]: header } });
    expect(JSON.parse((await outcome).payload_json)).toMatchObject({ status: 'failed', error: { code: 'approval_mismatch' } });
    await new Promise((r) => setTimeout(r, 500));
    expect(receiver.count('/c')).toBe(1);
    expect(receiver.count('/d')).toBe(0);
  });

  it('refuses a finished command\'s id reused with other params as idempotency_key_reused, audited: the vendor is not called, and the same params still get the first outcome', async () => {
    const id = randomUUID();
    const touch = (path: string) => send({ service: 'probe', action: 'touch', command_id: id, params: { url: receiver.url(path) } });
    const first = await touch('/reused-a');
    expect(first).toMatchObject({ status: 'succeeded' });
    const { event: audited } = await next(topics.audit, (e) => e.correlation_id === id && JSON.parse(e.payload_json).outcome === 'idempotency_key_reused');
    const other = await touch('/reused-b');
    expect(other).toMatchObject({ status: 'failed', error: { code: 'idempotency_key_reused' } });
    expect(other.event.event_id).not.toBe(first.event.event_id);
    await audited;
    const again = await touch('/reused-a');
    expect(again).toMatchObject({ status: 'succeeded' });
    expect(again.event.event_id).toBe(first.event.event_id);
    expect(receiver.count('/reused-a')).toBe(1);
    expect(receiver.count('/reused-b')).toBe(0);
  });

  it("runs only its own service's actions: llm.get_budget on ionflux.cmd.webhook is unknown_action", async () => {
    const out = await send({ service: 'webhook', action: 'llm.get_budget', params: {} });
    expect(out).toMatchObject({ status: 'failed', error: { code: 'unknown_action' } });
  });

  it('answers an undeclared emitted event with one failed outcome, finished: a redelivery gets the same outcome', async () => {
    const id = randomUUID();
    const first = await send({ service: 'probe', action: 'emit_undeclared', command_id: id, params: { url: receiver.url('/emit') } });
    expect(first).toMatchObject({ status: 'failed', error: { code: 'invalid_event' } });
    const again = await send({ service: 'probe', action: 'emit_undeclared', command_id: id, params: { url: receiver.url('/emit') } });
    expect(again.event.event_id).toBe(first.event.event_id);
    expect(receiver.count('/emit')).toBe(1);
  });

  it('answers an invalid command on ionflux.cmd.platform with a failed outcome as well as a dead letter', async () => {
    const id = randomUUID();
    await infra.bus.ensureTopics([defaultOutcomeTopic('platform', ws)]);
    const { event: outcome } = await next(defaultOutcomeTopic('platform', ws), (e) => e.correlation_id === id);
    await infra.bus.publish({ topic: topics.command('platform'), key: ws, value: Buffer.from(JSON.stringify({ command_id: id, workspace_id: ws, agent_id: 'agent-1', service: 'platform' })) });
    expect(JSON.parse((await outcome).payload_json)).toMatchObject({ status: 'failed', error: { code: 'invalid_command' } });
    const dead = await readAll(infra.bus, topics.deadLetter('platform'), { atLeast: 1 });
    expect(dead.some((r) => r.key?.toString() === ws && r.headers[DLQ_HEADERS.errorClass] === 'invalid_command')).toBe(true);
  });

  it('answers secret_store_unavailable (and dead-letters it) when the secret store is down, instead of no outcome', async () => {
    const down = await startWorker({ VAULT_ADDR: `http://127.0.0.1:${await freePort()}`, RETRY_MAX_ATTEMPTS: '2', RETRY_MAX_WAIT_MS: '200', WORKER_CONNECTORS: 'webhook', EXTRA_CONNECTORS_DIR: '' }, { waitReady: false });
    try {
      await worker.stop(); // only the worker without a secret store consumes now
      const out = await post('/a');
      expect(out).toMatchObject({ status: 'failed', error: { code: 'secret_store_unavailable' }, attempts: 2 });
      const dead = await readAll(infra.bus, topics.deadLetter('webhook'), { atLeast: 1 });
      expect(dead.some((r) => r.key?.toString() === ws && r.headers[DLQ_HEADERS.errorClass] === 'secret_store_unavailable')).toBe(true);
    } finally {
      await down.stop();
      await worker.start();
    }
  }, 180_000);

  it("reads an approved write's records again after an offset reset inside the window: no outcome added, no second call (RELIABILITY 15)", async () => {
    const group = uid('ionflux-reset-');
    await worker.stop();
    const again = await startWorker({ RETRY_MAX_WAIT_MS: '1000', EXTRA_CONNECTORS_DIR: 'tests/fixtures/connectors', COMMAND_GROUP_PREFIX: group });
    try {
      const id = randomUUID();
      const waiting = await post('/e', id);
      expect(waiting).toMatchObject({ status: 'awaiting_approval' });
      const { event: released } = await next(defaultOutcomeTopic('webhook', ws), (e) => e.correlation_id === id && e.event_type.endsWith('succeeded'));
      expect((await runCli(['approvals', 'approve', waiting.approval_id!])).code).toBe(0);
      await released;
      expect((await outcomesOf('webhook', id, 1)).map((o) => o.status)).toEqual(['awaiting_approval', 'succeeded']);
      await again.stop();
      // An operator's offset reset: the asking command and its release are both read again.
      const admin = createKafka({ brokers: infraEnv().brokers, auth: infraEnv().auth, clientId: 'command-core-test', logger: infra.logger }).admin();
      await admin.connect();
      await admin.resetOffsets({ groupId: `${group}-webhook-worker`, topic: topics.command('webhook'), earliest: true });
      await admin.disconnect();
      await again.start();
      // A command sent after the reset, on the same partition: once it is answered, the old records were read.
      expect(await send({ service: 'webhook', action: 'post', params: { url: 42 } })).toMatchObject({ status: 'failed', error: { code: 'invalid_params' } });
      expect((await outcomesOf('webhook', id, 1)).map((o) => o.status)).toEqual(['awaiting_approval', 'succeeded']);
      expect(receiver.count('/e')).toBe(1);
    } finally {
      await again.stop();
      await worker.start();
    }
  }, 180_000);

  it('refuses a command replayed past the dedupe window (offset reset) as expired_command, never calling the vendor again (RELIABILITY 29)', async () => {
    const group = uid('ionflux-probe-replay-');
    const short = { COMMAND_DEDUPE_WINDOW_HOURS: String(3 / 3600), WORKER_CONNECTORS: 'probe', EXTRA_CONNECTORS_DIR: 'tests/fixtures/connectors', COMMAND_GROUP_PREFIX: group };
    await worker.stop();
    const replayer = await startWorker(short);
    try {
      const id = randomUUID();
      expect(await send({ service: 'probe', action: 'touch', command_id: id, params: { url: receiver.url('/touch') } })).toMatchObject({ status: 'succeeded' });
      expect(receiver.count('/touch')).toBe(1);
      await replayer.stop();
      await new Promise((r) => setTimeout(r, 3500)); // the command is now older than the window
      // An operator's offset reset, as Kafka's own tools do it.
      const admin = createKafka({ brokers: infraEnv().brokers, auth: infraEnv().auth, clientId: 'command-core-test', logger: infra.logger }).admin();
      await admin.connect();
      await admin.resetOffsets({ groupId: `${group}-probe-worker`, topic: topics.command('probe'), earliest: true });
      await admin.disconnect();
      const { event: expired } = await next(defaultOutcomeTopic('probe', ws), (e) => e.correlation_id === id && e.event_type.endsWith('failed'));
      await replayer.start();
      expect(JSON.parse((await expired).payload_json)).toMatchObject({ error: { code: 'expired_command' } });
      expect(receiver.count('/touch')).toBe(1);
    } finally {
      await replayer.stop();
      await worker.start();
    }
  }, 180_000);
});

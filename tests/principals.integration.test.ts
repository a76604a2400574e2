import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaBus } from '../shared/bus/kafka/bus.ts';
import type { KafkaBus } from '../shared/bus/kafka/bus.ts';
import { topics } from '../shared/bus/topics.ts';
import { createHubClient, type HubClient } from '../shared/commands/client.ts';
import { encodeCommandJson } from '../shared/commands/envelope.ts';
import { defaultOutcomeTopic } from '../shared/commands/outcome.ts';
import { openWorkspaceConnectors, wsConnectorKey } from '../shared/commands/state.ts';
import type { KafkaAuth } from '../shared/config.ts';
import { createLogger } from '../shared/logger.ts';
import { secretPaths } from '../shared/secrets/store.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { runCli } from './helpers/cli.ts';
import { infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';
import { serviceEnv } from './helpers/principals.ts';
import { startReceiver } from './helpers/receiver.ts';
import { startWorker, type RunningWorker } from './helpers/worker.ts';

// RELIABILITY.md item 24, on the SASL test broker `make test` starts: an agent principal of
// workspace A, created with `ionflux principals create agent`, against a connector worker running
// as its own principal (ionflux-connector-worker, its own OpenBao token).
const env = infraEnv();
const logger = createLogger({ service: 'principals-test', level: 'silent' });
const busAs = (auth: KafkaAuth, clientId: string) => createKafkaBus({ brokers: env.brokers, auth, clientId, logger });
const refused = /not authorized|authorization|SASL|authentic|Closed connection|Connection error|timed out|Failed to connect/i;

describe('agent principals: confined to their workspace by the broker and the worker', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let worker: RunningWorker;
  let agent: { username: string; password: string; command_topics: Record<string, string>; outputs_topic: string };
  let agentAuth: KafkaAuth;
  let client: HubClient;
  let agentBus: KafkaBus;
  const wsA = uid('wsa');
  const wsB = uid('wsb');
  const agentId = uid('agent');
  const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });

  const postFor = (workspace: string, path: string, commandId: string = randomUUID()) => ({
    command_id: commandId,
    workspace_id: workspace,
    agent_id: agentId,
    service: 'webhook',
    action: 'post',
    params: { url: receiver.url(path), payload: { from: agentId } },
  });

  beforeAll(async () => {
    infra = await realInfra('principals-test');
    receiver = await startReceiver();
    // Workspace A may post to the receiver without approval; B has the same set up, so nothing
    // but the principal's workspace can stop a command for B.
    const settings = await openWorkspaceConnectors(infra);
    for (const ws of [wsA, wsB]) {
      await vault.put(secretPaths.workspace(ws, 'webhook'), { signing_secret: `whsec_${randomBytes(24).toString('base64')}` });
      await settings.set(wsConnectorKey(ws, 'webhook'), { settings: { urls: [receiver.url(`/${ws}`)], preapproved: [receiver.url(`/${ws}`)] }, connection: 'connected', updated_at: new Date().toISOString() });
    }
    await settings.close();
    // The worker starts before either workspace has an agent: their command topics appear later.
    worker = await startWorker({ ...serviceEnv('connector-worker'), COMMAND_TOPIC_RESCAN_MS: '1000' });

    const created = await runCli(['principals', 'create', 'agent', agentId, '--workspace', wsA, '--json']);
    expect(created.code, created.stderr).toBe(0);
    agent = JSON.parse(created.stdout) as typeof agent;
    // B has an agent too, so its command topic exists and only the ACLs keep A's agent out.
    expect((await runCli(['principals', 'create', 'agent', uid('other'), '--workspace', wsB, '--json'])).code).toBe(0);
    agentAuth = { sasl: { mechanism: 'scram-sha-256', username: agent.username, password: agent.password } };
    client = await createHubClient({ brokers: env.brokers, auth: agentAuth, registryUrl: env.registryUrl });
    agentBus = busAs(agentAuth, 'agent-raw');
  }, 180_000);

  afterAll(async () => {
    await client?.close();
    await agentBus?.close();
    await worker?.stop();
    await receiver?.close();
    await infra?.close();
  });

  it('prints the credentials once, keeps them in the secret store and lists the principal', async () => {
    expect(agent).toMatchObject({ username: `agent.${agentId}.ws_${wsA}`, command_topics: { webhook: topics.workspaceCommand('webhook', wsA) }, outputs_topic: topics.agentOutputs(agentId, wsA) });
    expect((await vault.get(secretPaths.agentPrincipal(wsA, agentId)))?.value).toMatchObject({ username: agent.username, password: agent.password });
    const list = await runCli(['principals', 'list', '--json']);
    const rows = list.stdout.trim().split('\n').map((l) => JSON.parse(l) as { principal: string; kind: string; acls: number });
    expect(rows.find((r) => r.principal === agent.username)).toMatchObject({ kind: 'agent', workspace_id: wsA, agent_id: agentId });
    expect(rows.find((r) => r.principal === 'ionflux-connector-worker')).toMatchObject({ kind: 'service' });
    expect(list.stdout).not.toContain(agent.password);
  });

  it('with the registry down (its audit record cannot be made), creates nothing, and a retry then works', async () => {
    const later = uid('later');
    const down = await runCli(['principals', 'create', 'agent', later, '--workspace', wsA, '--json'], { env: { SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1/apis/ccompat/v7' } });
    expect(down.code).not.toBe(0);
    expect(down.stdout).toBe('');
    expect(await vault.get(secretPaths.agentPrincipal(wsA, later))).toBeNull();
    const listed = await runCli(['principals', 'list', '--json']);
    expect(listed.stdout).not.toContain(`agent.${later}.`);
    const retried = await runCli(['principals', 'create', 'agent', later, '--workspace', wsA, '--json']);
    expect(retried.code, retried.stderr).toBe(0);
    expect(JSON.parse(retried.stdout)).toMatchObject({ username: `agent.${later}.ws_${wsA}`, password: expect.any(String) });
    expect((await runCli(['principals', 'revoke', 'agent', later, '--workspace', wsA])).code).toBe(0);
  });

  it('runs its commands for A end to end, on a workspace topic the worker found while running', async () => {
    const out = await client.send(postFor(wsA, `/${wsA}`), { timeoutMs: 60_000 });
    expect(out).toMatchObject({ status: 'succeeded', result: { status: 200 } });
    expect(receiver.count(`/${wsA}`)).toBe(1);
    expect(worker.output.some((l) => l.includes('new topics match the subscription'))).toBe(true);
    // And it reads A's topics: its outcomes are there.
    expect((await readAll(agentBus, defaultOutcomeTopic('webhook', wsA), { atLeast: 1 })).length).toBeGreaterThan(0);
  });

  it('cannot read a topic of B', async () => {
    const topicB = defaultOutcomeTopic('webhook', wsB);
    await infra.bus.publish({ topic: topicB, key: wsB, value: 'b-only' });
    // The broker does not even show it, and a consumer subscribing to it by name is refused.
    expect(await agentBus.listTopics()).not.toContain(topicB);
    expect(await infra.bus.listTopics()).toContain(topicB);
    await expect(agentBus.subscribe({ service: 'principals-test', groupId: `${agent.username}.${uid('g')}`, subscriptions: [topicB], handler: async () => undefined })).rejects.toThrow(/authoriz/i);
  });

  it('cannot write ionflux.state.approvals', async () => {
    const key = `forged-${uid()}`;
    await expect(agentBus.publish({ topic: topics.state('approvals'), key, value: JSON.stringify({ approval_id: key, status: 'approved' }) }, { timeoutMs: 15_000 })).rejects.toThrow(/authoriz/i);
    expect((await readAll(infra.bus, topics.state('approvals'))).some((r) => r.key?.toString() === key)).toBe(false);
  });

  it('cannot write ionflux.cmd.platform, nor the admins\' command topic of any service', async () => {
    for (const topic of [topics.command('platform'), topics.command('webhook'), topics.audit]) {
      const marker = uid('forged');
      await expect(agentBus.publish({ topic, key: wsA, value: JSON.stringify({ ...postFor(wsA, `/${wsA}`, marker), service: 'platform', action: 'approvals.approve', params: { approval_id: marker } }) }, { timeoutMs: 15_000 })).rejects.toThrow(/authoriz/i);
      expect((await readAll(infra.bus, topic)).some((r) => r.value?.toString().includes(marker))).toBe(false);
    }
  });

  it('cannot send a command for B: refused by the broker on B\'s topic, and by the worker (forbidden_workspace, audited) on its own', async () => {
    await expect(client.send(postFor(wsB, `/${wsB}`), { timeoutMs: 15_000 })).rejects.toThrow(/authoriz/i);

    // The envelope names B, the topic is A's: the worker answers in A, audits, runs nothing.
    const id = randomUUID();
    const outcomes = defaultOutcomeTopic('webhook', wsA);
    await agentBus.publish({ topic: topics.workspaceCommand('webhook', wsA), key: wsB, value: encodeCommandJson(postFor(wsB, `/${wsB}`, id)) });
    const failed = await waitFor(async () => {
      for (const r of await readAll(infra.bus, outcomes)) {
        const e = await infra.codec.decode(r.value!);
        if (e.correlation_id === id) return e;
      }
      return undefined;
    });
    expect(failed.event_type).toBe('webhook.command.failed');
    expect(failed.workspace_id).toBe(wsA);
    expect(JSON.parse(failed.payload_json)).toMatchObject({ status: 'failed', error: { code: 'forbidden_workspace' } });
    const audit = await waitFor(async () => {
      for (const r of await readAll(infra.bus, topics.audit)) {
        const e = await infra.codec.decode(r.value!);
        if (e.correlation_id === id) return e;
      }
      return undefined;
    });
    expect(audit.workspace_id).toBe(wsA);
    expect(JSON.parse(audit.payload_json)).toMatchObject({ kind: 'action_failed', outcome: 'forbidden_workspace', command_id: id });
    expect(receiver.count(`/${wsB}`)).toBe(0);
    expect(await readAll(infra.bus, defaultOutcomeTopic('webhook', wsB))).toHaveLength(1); // the test's own 'b-only' record, nothing else
  });

  it('refuses a client without credentials, for producing and for consuming', async () => {
    const anonymous = createKafkaBus({ brokers: env.brokers, clientId: 'anonymous', logger, connectionTimeoutMs: 2000 });
    try {
      await expect(anonymous.publish({ topic: topics.workspaceCommand('webhook', wsA), key: wsA, value: encodeCommandJson(postFor(wsA, `/${wsA}`)) }, { timeoutMs: 15_000 })).rejects.toThrow(refused);
      await expect(anonymous.listTopics()).rejects.toThrow(refused);
      await expect(anonymous.subscribe({ service: 'principals-test', groupId: uid('anon'), subscriptions: [defaultOutcomeTopic('webhook', wsA)], handler: async () => undefined })).rejects.toThrow(refused);
    } finally {
      await anonymous.close().catch(() => undefined);
    }
    const wrong = busAs({ sasl: { mechanism: 'scram-sha-256', username: agent.username, password: 'not-the-password' } }, 'wrong-password');
    try {
      await expect(wrong.listTopics()).rejects.toThrow(refused);
    } finally {
      await wrong.close().catch(() => undefined);
    }
  });

  it('after `principals revoke`, the agent can no longer log in, and its credentials are gone', async () => {
    const other = uid('gone');
    const made = JSON.parse((await runCli(['principals', 'create', 'agent', other, '--workspace', wsA, '--json'])).stdout) as { username: string; password: string };
    const revoked = await runCli(['principals', 'revoke', 'agent', other, '--workspace', wsA]);
    expect(revoked.code, revoked.stderr).toBe(0);
    const bus = busAs({ sasl: { mechanism: 'scram-sha-256', username: made.username, password: made.password } }, 'revoked');
    try {
      await expect(bus.listTopics()).rejects.toThrow(refused);
    } finally {
      await bus.close().catch(() => undefined);
    }
    expect(await vault.get(secretPaths.agentPrincipal(wsA, other))).toBeNull();

    // Revoked already, or never there (a mistyped id): said so, exit 1, and no audit record.
    const auditsBefore = (await readAll(infra.bus, topics.audit)).length;
    for (const id of [other, uid('typo')]) {
      const again = await runCli(['principals', 'revoke', 'agent', id, '--workspace', wsA]);
      expect(again.code, again.stderr).toBe(1);
      expect(again.stderr).toContain(`no principal agent.${id}.ws_${wsA}`);
      expect(again.stdout).not.toContain('revoked');
    }
    expect(await readAll(infra.bus, topics.audit)).toHaveLength(auditsBefore);
  });
});

async function waitFor<T>(probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 300));
  }
}

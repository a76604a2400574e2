import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaTable } from '../shared/bus/table/table.ts';
import { createHubClient, type HubClient } from '../shared/commands/client.ts';
import { openWorkspaceConnectors, wsConnectorKey, type WorkspaceConnector } from '../shared/commands/state.ts';
import { secretPaths } from '../shared/secrets/store.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { infraEnv, realInfra, uid } from './helpers/infra.ts';
import { startReceiver } from './helpers/receiver.ts';
import { startWorker, type RunningWorker } from './helpers/worker.ts';

const env = infraEnv();

// RELIABILITY item 25: the webhook connector's requests go through the outbound policy.
describe('outbound policy: webhook.post to loopback or private addresses, worker without OUTBOUND_ALLOWLIST', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let worker: RunningWorker;
  let client: HubClient;
  let settings: KafkaTable<WorkspaceConnector>;
  const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });
  const ws = uid('ws');
  const byName = () => receiver.url('/by-name').replace('127.0.0.1', 'localhost');
  const mapped = () => receiver.url('/mapped').replace('127.0.0.1', '[::ffff:7f00:1]');

  beforeAll(async () => {
    infra = await realInfra('outbound-test');
    receiver = await startReceiver();
    await vault.put(secretPaths.workspace(ws, 'webhook'), { signing_secret: `whsec_${randomBytes(32).toString('base64')}` });
    settings = await openWorkspaceConnectors(infra);
    // Registered and pre-approved, so nothing but the destination stands in the way.
    const urls = [receiver.url('/direct'), byName(), mapped(), 'http://169.254.169.254/latest/meta-data/'];
    await settings.set(wsConnectorKey(ws, 'webhook'), { settings: { urls, preapproved: urls }, connection: 'connected', updated_at: new Date().toISOString() });
    // The helper allow-lists 127.0.0.1 for the other tests; this worker has the default policy.
    worker = await startWorker({ OUTBOUND_ALLOWLIST: '', RETRY_MAX_WAIT_MS: '3000' });
    client = await createHubClient({ brokers: env.brokers, registryUrl: env.registryUrl });
  }, 180_000);
  afterAll(async () => {
    await client?.close();
    await worker?.stop();
    await settings?.close();
    await receiver?.close();
    await vault.delete(secretPaths.workspace(ws, 'webhook')).catch(() => undefined);
    await infra?.close();
  });

  const post = (url: string) => client.send({ workspace_id: ws, agent_id: 'agent-1', service: 'webhook', action: 'post', params: { url, payload: { n: 1 } } }, { timeoutMs: 60_000 });

  it('fails at once with forbidden_destination (one attempt, no retries) for 127.0.0.1, a name resolving there, a v4-mapped form and cloud metadata', async () => {
    const outcomes = await Promise.all([
      post(receiver.url('/direct')),
      post(byName()),
      post(mapped()),
      post('http://169.254.169.254/latest/meta-data/'),
    ]);
    for (const o of outcomes) expect(o).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'forbidden_destination', message: expect.stringMatching(/OUTBOUND_ALLOWLIST/) } });
    expect(outcomes[1]!.error!.message).toMatch(/localhost \(127\.0\.0\.1\): loopback/);
    expect(receiver.count('/direct') + receiver.count('/by-name') + receiver.count('/mapped')).toBe(0);
  });
});

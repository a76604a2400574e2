import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaTable } from '../../shared/bus/table/table.ts';
import type { IncomingRecord } from '../../shared/bus/types.ts';
import { topics } from '../../shared/bus/topics.ts';
import { createHubClient, type HubClient } from '../../shared/commands/client.ts';
import { defaultOutcomeTopic } from '../../shared/commands/outcome.ts';
import { openWorkspaceConnectors, wsConnectorKey, type WorkspaceConnector } from '../../shared/commands/state.ts';
import { createVaultSecretStore } from '../../shared/secrets/vault-store.ts';
import { secretPaths } from '../../shared/secrets/store.ts';
import { servicePrincipal } from '../../shared/security/principals.ts';
import { runCli } from '../helpers/cli.ts';
import { infraEnv, readAll, realInfra, testStateDir, testTmpDir, uid } from '../helpers/infra.ts';
import { freePort, startIngester, type RunningIngester } from '../helpers/ingester.ts';
import { startOpenBao, type OwnOpenBao } from '../helpers/openbao.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { standardWebhookHeaders } from '../helpers/sign.ts';
import { startWorker, type RunningWorker } from '../helpers/worker.ts';

const env = infraEnv();
const SIGNING_SECRET = `whsec_${randomBytes(32).toString('base64')}`;

/** Every file under `dir`, for a byte search (the services' state: LMDB tables, checkpoints). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => join(dir, f)).filter((f) => statSync(f).isFile());
}

/** The secrets among `values` found in any of the records' keys, values or headers. */
function leakedIn(records: IncomingRecord[], values: string[]): string[] {
  return values.filter((v) => records.some((r) => [r.key, r.value, ...Object.values(r.headers)].some((b) => b !== null && b !== undefined && Buffer.from(b).includes(v))));
}

// RELIABILITY item 19: Vault unreachable -> features needing it report a clear degraded state;
// services stay up; nothing is written in plaintext as a fallback. Against a real OpenBao of the
// test's own that is frozen (SIGSTOP: connections accepted, nothing answered) and killed (SIGKILL:
// connections refused), then brought back on the same storage, sealed, and unsealed.
describe('services while their OpenBao hangs, dies and comes back (item 19)', () => {
  let bao: OwnOpenBao;
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let settings: KafkaTable<WorkspaceConnector>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let worker: RunningWorker;
  let ingester: RunningIngester;
  let client: HubClient;
  let endpoint: { endpoint_id: string; secret: string };
  let workerOps: string;
  const ws = uid('ws');
  // Where a service would write its secrets if it fell back to the local encrypted file store.
  const fallback = testTmpDir('ionflux-no-fallback-');
  const noFileStore = { SECRETS_FILE: join(fallback, 'secrets.enc'), SECRETS_KEY_FILE: join(fallback, 'secrets.key') };
  const stateDirs = { worker: testStateDir(), ingester: testStateDir() };

  beforeAll(async () => {
    bao = await startOpenBao();
    infra = await realInfra('secret-store-outage');
    receiver = await startReceiver();
    settings = await openWorkspaceConnectors(infra);
    await settings.set(wsConnectorKey(ws, 'webhook'), { settings: { urls: [receiver.url('/hook')], preapproved: [receiver.url('/hook')] }, connection: 'connected', updated_at: new Date().toISOString() });
    const admin = createVaultSecretStore({ addr: bao.addr, token: bao.token('ionflux-admin'), mount: 'secret' });
    await admin.put(secretPaths.workspace(ws, 'webhook'), { signing_secret: SIGNING_SECRET });
    // Each service with its own token on this OpenBao, as `make up` runs them.
    const workerOpsPort = await freePort();
    workerOps = `http://127.0.0.1:${workerOpsPort}`;
    worker = await startWorker({
      VAULT_ADDR: bao.addr, VAULT_TOKEN: bao.token(servicePrincipal('connector-worker')), ...noFileStore, IONFLUX_STATE_DIR: stateDirs.worker,
      WORKER_OPS_PORT: String(workerOpsPort), WORKER_CONNECTORS: 'webhook', RETRY_MAX_ATTEMPTS: '2', RETRY_MAX_WAIT_MS: '500',
    }, { waitReady: false }); // its ops port is this test's: readiness is awaited below
    for (let i = 0; (await fetch(`${workerOps}/readyz`).catch(() => null))?.status !== 200; i++) {
      if (i > 240) throw new Error(`the worker was not ready within 60 s:\n${worker.output.slice(-15).join('\n')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    ingester = await startIngester({
      VAULT_ADDR: bao.addr, VAULT_TOKEN: bao.token(servicePrincipal('webhook-ingester')), ...noFileStore, IONFLUX_STATE_DIR: stateDirs.ingester,
      SECRET_CACHE_MS: '0', // every delivery reads its endpoint's secret: what a cache miss does
    });
    const created = await runCli(['endpoints', 'create', '--workspace', ws, '--source', 'zapier'], { env: { VAULT_ADDR: bao.addr, VAULT_TOKEN: bao.token('ionflux-admin'), INGESTER_PORT: String(ingester.port) } });
    expect(created.code, created.stderr).toBe(0);
    endpoint = JSON.parse(created.stdout) as typeof endpoint;
    client = await createHubClient({ brokers: env.brokers, auth: env.auth, registryUrl: env.registryUrl });
  }, 180_000);
  afterAll(async () => {
    await client?.close();
    await ingester?.stop();
    await worker?.stop();
    await settings?.close();
    await receiver?.close();
    await infra?.close();
    await bao?.remove();
  }, 120_000);

  /** A command that needs the workspace's signing secret (the webhook connector signs what it posts). */
  const post = () => client.send({ workspace_id: ws, agent_id: 'agent-1', service: 'webhook', action: 'post', params: { url: receiver.url('/hook'), payload: { n: randomUUID() } } }, { timeoutMs: 90_000 });
  const delivery = () => {
    const body = JSON.stringify({ type: 'invoice.paid', data: { id: `inv_${randomUUID()}` } });
    return ingester.post(`/webhooks/generic/${endpoint.endpoint_id}`, body, standardWebhookHeaders({ body, secrets: [endpoint.secret] }));
  };
  const readyz = async (opsUrl: string) => {
    const res = await fetch(`${opsUrl}/readyz`);
    return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, string> } };
  };
  const healthz = async (opsUrl: string) => (await fetch(`${opsUrl}/healthz`)).status;
  /** The receiver got a body signed with the stored secret: the worker read it from OpenBao. */
  const signedWithStoredSecret = (d: { headers: Record<string, string | string[] | undefined>; body: string }) => {
    const key = Buffer.from(SIGNING_SECRET.slice('whsec_'.length), 'base64');
    return d.headers['webhook-signature'] === `v1,${createHmac('sha256', key).update(`${d.headers['webhook-id']}.${d.headers['webhook-timestamp']}.${d.body}`).digest('base64')}`;
  };

  /** What a user sees while the store cannot be used: degraded, clear retryable errors, processes up. */
  async function expectDegraded(pids: { worker: number; ingester: number }) {
    const ready = await readyz(workerOps);
    expect(ready).toMatchObject({ status: 503, body: { status: 'not_ready', checks: { secret_store: 'unavailable', kafka: 'ok' } } });
    expect(await healthz(workerOps)).toBe(200);
    const calls = receiver.count('/hook');
    const out = await post();
    expect(out).toMatchObject({ status: 'failed', error: { code: 'secret_store_unavailable', retryable: true }, attempts: 2 });
    expect(receiver.count('/hook')).toBe(calls); // nothing sent unsigned or signed with something else
    expect(await delivery()).toMatchObject({ status: 503, body: { error: 'unavailable', reason: 'verification secrets unavailable' } });
    expect(await healthz(ingester.opsUrl)).toBe(200);
    expect({ worker: worker.pid(), ingester: ingester.pid() }).toEqual(pids);
  }

  /** Back to normal, in the same processes. */
  async function expectRecovered(pids: { worker: number; ingester: number }) {
    await expect.poll(async () => (await readyz(workerOps)).status, { timeout: 30_000, interval: 250 }).toBe(200);
    expect((await readyz(workerOps)).body.checks.secret_store).toBe('ok');
    const out = await post();
    expect(out).toMatchObject({ status: 'succeeded' });
    expect(signedWithStoredSecret(receiver.deliveries.at(-1)!)).toBe(true);
    expect(await delivery()).toMatchObject({ status: 200, body: { status: 'accepted' } });
    expect({ worker: worker.pid(), ingester: ingester.pid() }).toEqual(pids);
  }

  it('hung (SIGSTOP), killed, restarted sealed and unsealed: degraded with clear retryable errors, never down, never a plaintext fallback; recovers without a restart', async () => {
    // The endpoint's link reaches the ingester through Kafka; until then it is 404.
    await expect.poll(async () => (await delivery()).status, { timeout: 30_000, interval: 250 }).toBe(200);
    const pids = { worker: worker.pid(), ingester: ingester.pid() };
    await expectRecovered(pids);

    bao.freeze();
    try {
      await expectDegraded(pids);
    } finally {
      bao.thaw();
    }
    await expectRecovered(pids);

    await bao.kill();
    await expectDegraded(pids);
    await bao.restart(); // the same storage: it comes back sealed
    expect((await readyz(workerOps)).body.checks.secret_store).toBe('unavailable');
    expect(await delivery()).toMatchObject({ status: 503, body: { error: 'unavailable' } });
    await bao.unseal();
    // The secrets written before the outage, read with the same tokens, by the same processes.
    await expectRecovered(pids);

    // No secret value or token anywhere a user or operator reads: logs, outcomes, dead letters, audit.
    const secrets = [SIGNING_SECRET, endpoint.secret, bao.rootToken, bao.token(servicePrincipal('connector-worker')), bao.token(servicePrincipal('webhook-ingester')), bao.token('ionflux-admin')];
    const logs = [...worker.output, ...ingester.output].join('\n');
    expect(secrets.filter((s) => logs.includes(s))).toEqual([]);
    await ingester.drained();
    const outcomes = await readAll(infra.bus, defaultOutcomeTopic('webhook', ws));
    expect(outcomes.length).toBeGreaterThanOrEqual(5); // 3 succeeded, 2 failed
    // A topic nothing was written to may not exist: nothing leaked there either.
    const records = [...outcomes, ...(await Promise.all([topics.deadLetter('webhook'), topics.deadLetter('webhook-ingester'), topics.audit, topics.event('zapier', ws, 'invoice', 'paid')].map((t) => readAll(infra.bus, t).catch(() => [])))).flat()];
    expect(leakedIn(records, secrets)).toEqual([]);
    // Nothing written in plaintext as a fallback: no local secret file, no secret in the services' state.
    expect(readdirSync(fallback)).toEqual([]);
    const stateFiles = [...filesUnder(stateDirs.worker), ...filesUnder(stateDirs.ingester)];
    expect(stateFiles.length).toBeGreaterThan(0);
    expect(stateFiles.filter((f) => secrets.some((s) => readFileSync(f).includes(s)))).toEqual([]);
  }, 240_000);
});

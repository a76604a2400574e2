// RELIABILITY item 19: "Vault unreachable -> features needing it report a clear degraded state".
// The webhook ingester's edge reads generic endpoints' and SendGrid accounts' verification secrets
// from the secret store: its /readyz names the store, and says `degraded` (200: the routes whose
// secrets come from the environment go on) while OpenBao hangs or is down. Where the store is
// required (the connector worker), /readyz says why it is unavailable: sealed apart from unreachable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servicePrincipal } from '../../shared/security/principals.ts';
import { testTmpDir } from '../helpers/infra.ts';
import { freePort, startIngester, type RunningIngester } from '../helpers/ingester.ts';
import { startOpenBao, type OwnOpenBao } from '../helpers/openbao.ts';
import { startWorker, type RunningWorker } from '../helpers/worker.ts';

describe('the webhook ingester reports its secret store on its ops port (item 19)', () => {
  let bao: OwnOpenBao;
  let ingester: RunningIngester;

  beforeAll(async () => {
    bao = await startOpenBao();
    const fallback = testTmpDir('ionflux-no-fallback-');
    ingester = await startIngester({ VAULT_ADDR: bao.addr, VAULT_TOKEN: bao.token(servicePrincipal('webhook-ingester')), SECRETS_FILE: `${fallback}/secrets.enc`, SECRETS_KEY_FILE: `${fallback}/secrets.key` });
  }, 180_000);
  afterAll(async () => {
    await ingester?.stop();
    await bao?.remove();
  }, 60_000);

  const readyz = async () => {
    const res = await fetch(`${ingester.opsUrl}/readyz`);
    return { http: res.status, ...((await res.json()) as { status: string; checks: Record<string, string>; details?: Record<string, string> }) };
  };

  it('names the secret store: ok while OpenBao answers, unavailable while it hangs or is down, ok again after', async () => {
    expect(await readyz()).toMatchObject({ http: 200, status: 'ready', checks: { kafka: 'ok', secret_store: 'ok' } });
    bao.freeze();
    try {
      await expect.poll(readyz, { timeout: 15_000, interval: 250 }).toMatchObject({ http: 200, status: 'degraded', checks: { kafka: 'ok', secret_store: 'unavailable' }, details: { secret_store: expect.stringMatching(/no answer/) } });
    } finally {
      bao.thaw();
    }
    await expect.poll(async () => (await readyz()).checks.secret_store, { timeout: 30_000 }).toBe('ok');
    await bao.kill();
    expect(await readyz()).toMatchObject({ http: 200, status: 'degraded', details: { secret_store: expect.stringMatching(/unreachable/) } });
  }, 120_000);
});

describe("the connector worker's /readyz says why the secret store is unavailable (item 19)", () => {
  let bao: OwnOpenBao;
  let worker: RunningWorker;
  let ops: string;

  beforeAll(async () => {
    bao = await startOpenBao();
    const port = await freePort();
    ops = `http://127.0.0.1:${port}`;
    worker = await startWorker({ VAULT_ADDR: bao.addr, VAULT_TOKEN: bao.token(servicePrincipal('connector-worker')), WORKER_OPS_PORT: String(port), WORKER_CONNECTORS: 'webhook' }, { waitReady: false });
  }, 180_000);
  afterAll(async () => {
    await worker?.stop();
    await bao?.remove();
  }, 60_000);

  const readyz = async () => JSON.stringify(await (await fetch(`${ops}/readyz`)).json());

  it('names sealed apart from unreachable', async () => {
    await expect.poll(readyz, { timeout: 60_000 }).toContain('"secret_store":"ok"');
    await bao.kill();
    expect(await readyz()).toMatch(/unreachable|refused/i);
    await bao.restart();
    expect(await readyz()).toMatch(/sealed/i);
  }, 120_000);
});

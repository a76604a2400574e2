import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../shared/bus/topics.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { sendgridAccountKeyPath } from '../services/webhook-ingester/secrets.ts';
import { runCli } from './helpers/cli.ts';
import { freePort, startIngester, type RunningIngester } from './helpers/ingester.ts';
import { infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';
import { loadFixture, sendgridHeaders, sendgridKeyPair, standardWebhookHeaders } from './helpers/sign.ts';

const platform = sendgridKeyPair();
const keyA = sendgridKeyPair();
const keyB = sendgridKeyPair();
const [BOUNCE] = JSON.parse(loadFixture('sendgrid', 'bounce').toString()) as Record<string, unknown>[];
const batch = () => JSON.stringify([{ ...BOUNCE, sg_event_id: randomUUID() }]);

describe('webhook accounts: SendGrid batches stay in their account, unknown endpoints never reach the secret store', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let ingester: RunningIngester;
  const [wsA, wsB] = [uid('ws'), uid('ws')];
  const [accountA, accountB] = [uid('esp'), uid('esp')];

  beforeAll(async () => {
    infra = await realInfra('accounts-test');
    expect((await runCli(['link', 'email', accountA, wsA, '--verification-key', keyA.publicKey])).code).toBe(0);
    expect((await runCli(['link', 'email', accountB, wsB, '--verification-key', keyB.publicKey])).code).toBe(0);
    ingester = await startIngester({ SENDGRID_WEBHOOK_PUBLIC_KEY: platform.publicKey });
    // Links reach the running ingester through Kafka: wait until both account routes are live.
    for (const [account, key] of [[accountA, keyA], [accountB, keyB]] as const) {
      for (let tries = 0; ; tries++) {
        const b = batch();
        const res = await ingester.post(`/webhooks/email/sendgrid/${account}`, b, sendgridHeaders({ body: b, privateKey: key.privateKey }));
        if (res.status === 200) break;
        if (tries > 60) throw new Error(`account route not live: ${JSON.stringify(res)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }, 120_000);
  afterAll(async () => {
    await ingester?.stop();
    await infra?.close();
  });

  it("refuses account A's captured signed batch replayed on account B's route, and the platform key on any account route", async () => {
    const inB = () => readAll(infra.bus, topics.event('email', wsB, 'delivery', 'bounced'), { atLeast: 1 });
    const before = (await inB()).length;
    const body = batch();
    const captured = sendgridHeaders({ body, privateKey: keyA.privateKey });
    const replayed = await ingester.post(`/webhooks/email/sendgrid/${accountB}`, body, captured);
    expect(replayed).toMatchObject({ status: 401, body: { error: 'invalid_signature', reason: 'signature_mismatch' } });
    const platformSigned = await ingester.post(`/webhooks/email/sendgrid/${accountB}`, body, sendgridHeaders({ body, privateKey: platform.privateKey }));
    expect(platformSigned).toMatchObject({ status: 401, body: { reason: 'signature_mismatch' } });
    // The same bytes on their own route are accepted, into A's workspace only.
    expect((await ingester.post(`/webhooks/email/sendgrid/${accountA}`, body, captured)).body).toMatchObject({ status: 'accepted' });
    await ingester.drained(); // its events are the inbox processor's, after the 2xx
    expect((await inB()).length).toBe(before);
    expect((await readAll(infra.bus, topics.event('email', wsA, 'delivery', 'bounced'), { atLeast: 2 })).length).toBeGreaterThanOrEqual(2);
  });

  it('refuses a batch signed more than 24 h ago (401 timestamp_too_old), even with the right key', async () => {
    const body = batch();
    const old = sendgridHeaders({ body, privateKey: keyA.privateKey, timestamp: Math.floor(Date.now() / 1000) - 25 * 3600 });
    expect(await ingester.post(`/webhooks/email/sendgrid/${accountA}`, body, old)).toMatchObject({ status: 401, body: { reason: 'timestamp_too_old' } });
  });

  it('answers 404 for an account or endpoint the link table does not know', async () => {
    const body = batch();
    expect(await ingester.post(`/webhooks/email/sendgrid/${uid('esp')}`, body, sendgridHeaders({ body, privateKey: keyA.privateKey }))).toMatchObject({ status: 404, body: { error: 'unknown_account' } });
    expect(await ingester.post('/webhooks/generic/ep_00000000deadbeef', '{}', standardWebhookHeaders({ body: '{}', secrets: ['whsec_AAAA'] }))).toMatchObject({ status: 404, body: { error: 'unknown_endpoint' } });
  });

  it('with the secret store unreachable, unknown endpoint ids still get 404 at once; a linked account gets 503 (retry later)', async () => {
    const blind = await startIngester({ VAULT_ADDR: `http://127.0.0.1:${await freePort()}`, SENDGRID_WEBHOOK_PUBLIC_KEY: platform.publicKey });
    try {
      const unknown = await Promise.all(Array.from({ length: 50 }, (_, i) => blind.post(`/webhooks/generic/ep_${String(i).padStart(16, '0')}`, '{}', standardWebhookHeaders({ body: '{}', secrets: ['whsec_AAAA'] }))));
      expect(new Set(unknown.map((r) => r.status))).toEqual(new Set([404]));
      const body = batch();
      expect(await blind.post(`/webhooks/email/sendgrid/${accountA}`, body, sendgridHeaders({ body, privateKey: keyA.privateKey }))).toMatchObject({ status: 503, body: { error: 'unavailable' } });
      expect(blind.output.some((l) => l.includes('verification secrets unavailable'))).toBe(true);
    } finally {
      await blind.stop();
    }
  }, 120_000);
  it('a new verification key keeps the previous one valid for --overlap-hours, also when the command is run again', async () => {
    const account = uid('esp');
    const ws = uid('ws');
    const store = createVaultSecretStore({ addr: infraEnv().vaultAddr, token: infraEnv().vaultToken, mount: 'secret' });
    try {
      expect((await runCli(['link', 'email', account, ws, '--verification-key', keyA.publicKey])).code).toBe(0);
      expect(await runCli(['link', 'email', account, ws, '--verification-key', keyB.publicKey, '--overlap-hours', 'soon'])).toMatchObject({ code: 2 });
      for (let run = 1; run <= 2; run++) {
        const rotated = await runCli(['link', 'email', account, ws, '--verification-key', keyB.publicKey, '--overlap-hours', '2']);
        expect(rotated.code, rotated.stderr).toBe(0);
        const stored = (await store.get(sendgridAccountKeyPath(account)))!.value;
        expect(stored).toMatchObject({ secret: keyB.publicKey, previous_secret: keyA.publicKey });
        const hoursLeft = (Date.parse(stored.previous_valid_until!) - Date.now()) / 3600_000;
        expect(hoursLeft).toBeGreaterThan(1.9);
        expect(hoursLeft).toBeLessThanOrEqual(2);
      }
    } finally {
      await store.delete(sendgridAccountKeyPath(account));
    }
  });
});

import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncomingRecord } from '../../shared/bus/types.ts';
import { topics } from '../../shared/bus/topics.ts';
import { linkKey, platformEmailAccount } from '../../shared/links.ts';
import { runCli } from '../helpers/cli.ts';
import { readAll, realInfra, uid } from '../helpers/infra.ts';
import { freePort, startIngester, type RunningIngester } from '../helpers/ingester.ts';
import { loadFixture, newStandardWebhookSecret, sendgridHeaders, sendgridKeyPair, shopifyHeaders, standardWebhookHeaders, tiktokHeaders, whatsappHeaders } from '../helpers/sign.ts';

type Headers = Record<string, string>;
interface Signed { body: string; headers: Headers }

/**
 * One signed vendor route: how a genuine delivery is made, and the ways a forger or a broken
 * proxy gets it wrong. `signed(secret)` signs a fresh delivery (new ids) with the route's secret
 * or, for "wrong secret", with another of the same kind.
 */
interface Route {
  name: string;
  path: string;
  signed(other?: boolean): Signed;
  /** The signature headers (each removed on its own: "missing"). */
  signatureHeaders: string[];
  /** Header values no sender of this vendor produces (each set on its own: "malformed"). */
  malformed: (s: Signed) => [string, string][];
}

/** Changes the first digit in the body (an id, an amount, a timestamp): still JSON, other content. */
function tamper(body: string): string {
  const i = body.search(/[0-9]/);
  return `${body.slice(0, i)}${body[i] === '7' ? '8' : '7'}${body.slice(i + 1)}`;
}

const without = (h: Headers, name: string): Headers => Object.fromEntries(Object.entries(h).filter(([k]) => k.toLowerCase() !== name.toLowerCase()));
const withHeader = (h: Headers, name: string, value: string): Headers => ({ ...without(h, name), [name]: value });
const hex64 = () => randomBytes(32).toString('hex');

// RELIABILITY item 1 on every signed vendor route (Shopify, TikTok, SendGrid's platform and
// account routes, Meta WhatsApp, Standard Webhooks): tampered body, wrong secret, missing and
// malformed signature headers -> 401, never 5xx, and no record on any topic: not in the inbox
// (the only topic the edge writes), not on the workspace's topics, not on the dead-letter topic.
describe('unsigned, forged and mangled deliveries on every vendor route (item 1)', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let ingester: RunningIngester;
  const ws = uid('ws');
  const inbox = `ionflux.inbox.${uid('sig')}`;
  const shop = `${uid('shop')}.myshopify.com`;
  const openId = `act_${uid('tt')}`;
  const phoneNumberId = String(Date.now()) + String(Math.floor(Math.random() * 1e6));
  const account = uid('esp');
  const secrets = { shopify: `shpss_${randomBytes(16).toString('hex')}`, tiktok: `tt-${randomBytes(16).toString('hex')}`, whatsapp: `wa-${randomBytes(16).toString('hex')}`, sendgrid: sendgridKeyPair(), sendgridAccount: sendgridKeyPair() };
  const others = { shopify: `shpss_${randomBytes(16).toString('hex')}`, tiktok: `tt-${randomBytes(16).toString('hex')}`, whatsapp: `wa-${randomBytes(16).toString('hex')}`, sendgrid: sendgridKeyPair(), standard: newStandardWebhookSecret() };
  let endpoint: { endpoint_id: string; secret: string };
  let routes: Route[];

  beforeAll(async () => {
    infra = await realInfra('unsigned-deliveries');
    const port = await freePort();
    // Every account linked before the ingester starts (it reads the links to their end first), so
    // each genuine delivery is published at once: none is ever parked as unlinked.
    for (const args of [['shopify', shop, ws], ['tiktok', openId, ws], ['whatsapp', phoneNumberId, ws], ['email', account, ws, '--verification-key', secrets.sendgridAccount.publicKey]]) {
      const linked = await runCli(['link', ...args]);
      expect(linked.code, linked.stderr).toBe(0);
    }
    // The platform's own SendGrid sends for this workspace (the dispatcher's custom arg) have their link too.
    await infra.bus.publish({ topic: topics.state('links'), key: linkKey('email', platformEmailAccount(ws)), value: Buffer.from(JSON.stringify({ workspaceId: ws, linkedAt: new Date().toISOString() })) });
    const created = await runCli(['endpoints', 'create', '--workspace', ws, '--source', 'zapier'], { env: { INGESTER_PORT: String(port) } });
    expect(created.code, created.stderr).toBe(0);
    endpoint = JSON.parse(created.stdout) as typeof endpoint;
    ingester = await startIngester({
      INGESTER_PORT: String(port), IONFLUX_INBOX_TOPIC: inbox,
      SHOPIFY_API_SECRET: secrets.shopify, TIKTOK_CLIENT_SECRET: secrets.tiktok, WHATSAPP_APP_SECRET: secrets.whatsapp, SENDGRID_WEBHOOK_PUBLIC_KEY: secrets.sendgrid.publicKey,
    });

    const order = loadFixture('shopify', 'orders-create').toString();
    const tiktokBody = () => JSON.stringify({ ...(JSON.parse(loadFixture('tiktok', 'video-publish-completed').toString()) as object), user_openid: openId, create_time: Math.floor(Date.now() / 1000), content: JSON.stringify({ share_id: `video.${randomUUID()}` }) });
    const whatsappBody = () => loadFixture('whatsapp', 'text-message').toString().replace('106540352242922', phoneNumberId).replace(/"id": "wamid\.[^"]+"/, `"id": "wamid.${randomUUID()}"`);
    const bounce = (JSON.parse(loadFixture('sendgrid', 'bounce').toString()) as Record<string, unknown>[])[0]!;
    const sendgridBody = (custom: Record<string, string>) => JSON.stringify([{ ...bounce, ...custom, sg_event_id: randomUUID() }]);
    const standardBody = () => JSON.stringify({ type: 'invoice.paid', data: { id: `inv_${randomUUID()}`, amount: 4200 } });
    const sendgridMalformed = (s: Signed): [string, string][] => [
      ['X-Twilio-Email-Event-Webhook-Signature', 'not a signature'],
      ['X-Twilio-Email-Event-Webhook-Signature', randomBytes(16).toString('base64')], // too short for P-256 DER
      ['X-Twilio-Email-Event-Webhook-Signature', randomBytes(72).toString('base64')], // the right length, not DER
      ['X-Twilio-Email-Event-Webhook-Signature', `${s.headers['X-Twilio-Email-Event-Webhook-Signature']!}!`],
      ['X-Twilio-Email-Event-Webhook-Timestamp', 'yesterday'],
      ['X-Twilio-Email-Event-Webhook-Timestamp', `${s.headers['X-Twilio-Email-Event-Webhook-Timestamp']!}0`], // another time than the one signed
    ];

    routes = [
      {
        name: 'Shopify',
        path: '/webhooks/shopify',
        signed: (other) => ({ body: order, headers: shopifyHeaders({ topic: 'orders/create', shop, secret: other ? others.shopify : secrets.shopify, body: order }) }),
        signatureHeaders: ['X-Shopify-Hmac-Sha256'],
        malformed: (s) => [
          ['X-Shopify-Hmac-Sha256', 'not base64 at all ***'],
          ['X-Shopify-Hmac-Sha256', randomBytes(16).toString('base64')],
          ['X-Shopify-Hmac-Sha256', `sha256=${hex64()}`],
          ['X-Shopify-Hmac-Sha256', Buffer.from(s.headers['X-Shopify-Hmac-Sha256']!, 'base64').toString('hex')], // the right MAC, hex
          ['X-Shopify-Hmac-Sha256', `${s.headers['X-Shopify-Hmac-Sha256']!}AA`],
        ],
      },
      {
        name: 'TikTok',
        path: '/webhooks/tiktok',
        signed: (other) => {
          const body = tiktokBody();
          return { body, headers: tiktokHeaders({ body, secret: other ? others.tiktok : secrets.tiktok }) };
        },
        signatureHeaders: ['TikTok-Signature'],
        malformed: (s) => {
          const [t, sig] = s.headers['TikTok-Signature']!.split(',') as [string, string];
          return [
            ['TikTok-Signature', 'garbage'],
            ['TikTok-Signature', t],
            ['TikTok-Signature', sig],
            ['TikTok-Signature', `t=soon,${sig}`],
            ['TikTok-Signature', `${t},s=${'z'.repeat(64)}`],
            ['TikTok-Signature', `${t},${t},${sig}`],
            ['TikTok-Signature', `${t},s=${createHmac('sha256', secrets.tiktok).update(s.body).digest('hex')}`], // the body alone signed, without "<t>."
          ];
        },
      },
      {
        name: 'SendGrid (platform route)',
        path: '/webhooks/email/sendgrid',
        signed: (other) => {
          const body = sendgridBody({ ionflux_workspace: ws });
          return { body, headers: sendgridHeaders({ body, privateKey: (other ? others.sendgrid : secrets.sendgrid).privateKey }) };
        },
        signatureHeaders: ['X-Twilio-Email-Event-Webhook-Signature', 'X-Twilio-Email-Event-Webhook-Timestamp'],
        malformed: sendgridMalformed,
      },
      {
        name: "SendGrid (an account's route)",
        path: `/webhooks/email/sendgrid/${account}`,
        signed: (other) => {
          const body = sendgridBody({});
          return { body, headers: sendgridHeaders({ body, privateKey: (other ? others.sendgrid : secrets.sendgridAccount).privateKey }) };
        },
        signatureHeaders: ['X-Twilio-Email-Event-Webhook-Signature', 'X-Twilio-Email-Event-Webhook-Timestamp'],
        malformed: sendgridMalformed,
      },
      {
        name: 'Meta WhatsApp',
        path: '/webhooks/whatsapp',
        signed: (other) => {
          const body = whatsappBody();
          return { body, headers: whatsappHeaders({ body, appSecret: other ? others.whatsapp : secrets.whatsapp }) };
        },
        signatureHeaders: ['X-Hub-Signature-256'],
        malformed: (s) => {
          const hex = s.headers['X-Hub-Signature-256']!.slice('sha256='.length);
          return [
            ['X-Hub-Signature-256', hex], // no sha256= prefix
            ['X-Hub-Signature-256', `sha1=${hex.slice(0, 40)}`],
            ['X-Hub-Signature-256', `sha256=${hex.slice(0, 63)}`],
            ['X-Hub-Signature-256', `sha256=${'z'.repeat(64)}`],
            ['X-Hub-Signature-256', `sha256=${Buffer.from(hex, 'hex').toString('base64')}`],
          ];
        },
      },
      {
        name: 'Standard Webhooks (generic endpoint)',
        path: `/webhooks/generic/${endpoint.endpoint_id}`,
        signed: (other) => {
          const body = standardBody();
          return { body, headers: standardWebhookHeaders({ body, secrets: [other ? others.standard : endpoint.secret] }) };
        },
        signatureHeaders: ['webhook-signature', 'webhook-id', 'webhook-timestamp'],
        malformed: (s) => {
          const sig = s.headers['webhook-signature']!;
          return [
            ['webhook-signature', 'v1,'],
            ['webhook-signature', 'v1'],
            ['webhook-signature', `v2,${sig.slice(3)}`],
            ['webhook-signature', `,${sig.slice(3)}`],
            ['webhook-signature', `${sig.slice(0, -4)}`],
            ['webhook-signature', Array.from({ length: 21 }, () => sig).join(' ')],
            ['webhook-timestamp', 'now'],
            ['webhook-timestamp', String(Number(s.headers['webhook-timestamp']) + 1)], // another time than the one signed
            ['webhook-id', `${s.headers['webhook-id']!}.x`],
          ];
        },
      },
    ];
  }, 180_000);
  afterAll(async () => {
    await ingester?.stop();
    await infra?.close();
  }, 60_000);

  /** The topics a delivery of this workspace could land on, with their records now. */
  async function workspaceRecords(): Promise<IncomingRecord[]> {
    const mine = (await infra.bus.listTopics()).filter((t) => t.includes(`.ws_${ws}.`));
    return (await Promise.all(mine.map((t) => readAll(infra.bus, t)))).flat();
  }

  it('answers 401 invalid_signature to each, never 5xx, and not one of them reaches a topic; the genuine delivery on each route is published', async () => {
    const deadBefore = (await readAll(infra.bus, topics.deadLetter('webhook-ingester'))).length;
    const answers: { route: string; kind: string; status: number; error: unknown }[] = [];
    const send = async (r: Route, kind: string, s: Signed) => {
      const res = await ingester.post(r.path, s.body, s.headers);
      answers.push({ route: r.name, kind, status: res.status, error: res.body.error });
    };
    for (const r of routes) {
      const genuine = r.signed();
      await send(r, 'tampered body', { headers: genuine.headers, body: tamper(genuine.body) });
      await send(r, 'wrong secret', r.signed(true));
      for (const h of r.signatureHeaders) {
        const s = r.signed();
        await send(r, `missing ${h}`, { ...s, headers: without(s.headers, h) });
        await send(r, `empty ${h}`, { ...s, headers: withHeader(s.headers, h, '') });
      }
      const s = r.signed();
      for (const [h, v] of r.malformed(s)) await send(r, `${h}: ${v.slice(0, 40)}`, { ...s, headers: withHeader(s.headers, h, v) });
    }
    const notRefused = answers.filter((a) => a.status !== 401 || a.error !== 'invalid_signature');
    expect(notRefused).toEqual([]);
    expect(answers.length).toBeGreaterThan(routes.length * 6);
    // The edge appends to the inbox before it answers 2xx, and only then: nothing is there.
    expect(await readAll(infra.bus, inbox)).toEqual([]);

    // Each route is live and its secret right: the genuine delivery is accepted and published.
    const accepted: string[] = [];
    for (const r of routes) {
      const s = r.signed();
      const res = await ingester.post(r.path, s.body, s.headers);
      expect({ route: r.name, status: res.status, status_text: res.body.status }).toEqual({ route: r.name, status: 200, status_text: 'accepted' });
      accepted.push(...(res.body.event_ids as string[]));
    }
    expect(await readAll(infra.bus, inbox)).toHaveLength(routes.length);
    await ingester.drained();
    // On the workspace's topics exactly the genuine deliveries' events; nothing dead-lettered.
    const published = await Promise.all((await workspaceRecords()).map((r) => infra.codec.decode(r.value!)));
    expect(published.map((e) => e.event_id).sort()).toEqual([...accepted].sort());
    expect((await readAll(infra.bus, topics.deadLetter('webhook-ingester'))).length).toBe(deadBefore);
  }, 180_000);
});

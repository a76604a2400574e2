import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaTable } from '../shared/bus/table/table.ts';
import { topics } from '../shared/bus/topics.ts';
import type { IncomingRecord } from '../shared/bus/types.ts';
import { createHubClient, type HubClient } from '../shared/commands/client.ts';
import { openApprovals, openWorkspaceConnectors, wsConnectorKey, type Approval } from '../shared/commands/state.ts';
import { fromInboxRecord, INBOX_TOPIC } from '../shared/ingest/inbox.ts';
import { linkKey, openLinks } from '../shared/links.ts';
import { secretPaths } from '../shared/secrets/store.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { CONNECTIONS_TOPIC } from '../services/shopify-sync/state/connections.ts';
import { SYNC_STATE_TOPIC } from '../services/shopify-sync/state/sync-state.ts';
import { WEBHOOK_TOPICS } from '../services/shopify-sync/oauth/install.ts';
import { infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';
import { approveAsAdmin } from './helpers/tiktok.ts';
import { browseInstall, BROWSER, publishInternal, simEnv, startShopifySync, type RunningShopifySync } from './helpers/shopify.ts';
import { signQuery, startShopifySimulator, type ShopifySimulator } from './simulators/shopify/index.ts';
import type { SimShop } from './simulators/shopify/state.ts';

const env = infraEnv();
const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });

describe('shopify-sync against a Shopify simulator through @shopify/shopify-api: install, reads into the inbox, refresh, writes behind approval, lifecycle', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sim: ShopifySimulator;
  let sync: RunningShopifySync;
  let client: HubClient;
  let approvals: KafkaTable<Approval>;
  const workspaces: string[] = [];
  const webhookUrl = 'http://127.0.0.1:18080/webhooks/shopify';

  const newWorkspace = () => {
    const ws = uid('ws');
    workspaces.push(ws);
    return ws;
  };
  const send = (ws: string, action: string, params: Record<string, unknown> = {}, timeoutMs = 60_000) => client.send({ workspace_id: ws, agent_id: 'agent-s', service: 'shopify', action, params }, { timeoutMs });
  const events = async (ws: string, entity: string, action: string, atLeast = 0, timeoutMs = 15_000) => Promise.all((await readAll(infra.bus, topics.event('shopify', ws, entity, action), { atLeast, timeoutMs })).map(async (r) => infra.codec.decode(r.value!)));
  const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nsimulator saw: ${sim.requests.slice(-10).map((x) => `${x.method} ${x.path} ${x.root ?? ''} ${x.status}`).join(', ')}\n${sync.output.slice(-15).join('\n')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  /** The inbox records of one shop (its appends by this worker), decoded. */
  const inbox = async (shop: string, atLeast = 0) => {
    const all = await readAll(infra.bus, INBOX_TOPIC, { atLeast: 0, timeoutMs: 1000 });
    const mine = (rs: IncomingRecord[]) => rs.map((r) => fromInboxRecord(r)!).filter((d) => d?.headers['x-shopify-shop-domain'] === shop);
    if (mine(all).length >= atLeast) return mine(all);
    await until(`${atLeast} inbox records of ${shop}`, async () => mine(await readAll(infra.bus, INBOX_TOPIC, { timeoutMs: 500 })).length >= atLeast, 60_000);
    return mine(await readAll(infra.bus, INBOX_TOPIC));
  };
  const install = async (ws: string, shop: SimShop) => {
    const r = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}`);
    expect(r.status, r.body).toBe(200);
    return r;
  };

  beforeAll(async () => {
    infra = await realInfra('shopify-test');
    sim = await startShopifySimulator({ bulkDelayMs: 300 });
    sync = await startShopifySync({
      ...simEnv(sim),
      SHOPIFY_SYNC_GROUP: uid('shg'),
      SHOPIFY_WEBHOOK_URL: webhookUrl,
      SHOPIFY_POLL_INTERVAL_MS: '2000',
      // The nightly full sync is its own test below; here only incremental polls run.
      SHOPIFY_FULL_SYNC_INTERVAL_MS: '0',
      SHOPIFY_PAGE_SIZE: '5',
      SHOPIFY_BULK_POLL_MS: '200',
    });
    client = await createHubClient({ brokers: env.brokers, registryUrl: env.registryUrl });
    approvals = await openApprovals(infra);
  }, 180_000);

  afterAll(async () => {
    if (process.env.SHOPIFY_TEST_LOG) (await import('node:fs')).writeFileSync(process.env.SHOPIFY_TEST_LOG, sync?.output.join('\n') ?? '');
    await approvals?.close();
    await client?.close();
    await sync?.stop();
    // Leave no installation behind for later runs' owners to poll.
    for (const ws of workspaces) {
      await vault.delete(secretPaths.workspace(ws, 'shopify')).catch(() => undefined);
      await infra?.bus.publish({ topic: CONNECTIONS_TOPIC, key: ws, value: null }).catch(() => undefined);
    }
    await sim?.close();
    await infra?.close();
  });

  it('installs end to end through `ionflux connect shopify`: signed state, the SDK exchanging the code, token in Vault, shop linked, webhooks registered, audited', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop();
    const cli = spawn(process.execPath, ['bin/ionflux.mjs', 'connect', 'shopify', '--workspace', ws, '--shop', shop.domain, '--timeout', '60', '--json'], { env: { ...process.env, PUBLIC_BASE_URL: sync.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    cli.stdout.on('data', (d) => (stdout += d));
    const exit = new Promise<number | null>((r) => cli.on('close', r));
    await until('the CLI to print the URL', () => stdout.includes('authorization_url'));
    const printed = JSON.parse(stdout.split('\n')[0]!) as { authorization_url: string };
    expect(printed.authorization_url).toBe(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}`);

    const r = await browseInstall(printed.authorization_url);
    expect(r.status, r.body).toBe(200);
    expect(r.body).toContain(`${shop.domain} is installed for workspace ${ws}`);
    // The hub sent the shop's authorize page what Shopify's OAuth asks for.
    expect(r.authorize.href.startsWith(`${sim.url}/${shop.domain}/admin/oauth/authorize?`)).toBe(true);
    expect(Object.fromEntries(r.authorize.searchParams)).toMatchObject({ client_id: sim.apiKey, redirect_uri: `${sync.url}/shopify/callback` });
    expect(r.authorize.searchParams.get('scope')).toContain('read_orders');
    expect(r.authorize.searchParams.get('state')!.length).toBeGreaterThan(40);
    expect(await exit).toBe(0);
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toMatchObject({ connection: 'connected', shop: shop.domain });

    const stored = await vault.get(secretPaths.workspace(ws, 'shopify'));
    expect(JSON.parse(stored!.value.meta!)).toMatchObject({ shop: shop.domain });
    expect(sim.tokenIsLive(shop.domain, stored!.value.access_token!)).toBe(true);
    expect(stored!.value.refresh_token).toMatch(/^shprt_/);
    expect(JSON.parse(stored!.value.meta!).access_expires_at).toBeGreaterThan(Date.now());
    const links = await openLinks(infra);
    expect(links.get(linkKey('shopify', shop.domain))?.workspaceId).toBe(ws);
    await links.close();
    // Every webhook topic subscribed once, pointing at the ingester.
    expect(shop.webhooks.map((w) => w.topic).sort()).toEqual([...WEBHOOK_TOPICS].sort());
    expect(new Set(shop.webhooks.map((w) => w.uri))).toEqual(new Set([webhookUrl]));
    const audit = (await Promise.all((await readAll(infra.bus, topics.audit, { atLeast: 1 })).map((x) => infra.codec.decode(x.value!)))).filter((e) => e.workspace_id === ws);
    expect(audit.map((e) => JSON.parse(e.payload_json) as { kind: string; connector: string })).toContainEqual(expect.objectContaining({ kind: 'install', connector: 'shopify' }));
    expect((await events(ws, 'app', 'installed', 1)).map((e) => JSON.parse(e.payload_json))).toEqual([expect.objectContaining({ shop: shop.domain })]);

    const info = await send(ws, 'shop.get');
    expect(info).toMatchObject({ status: 'succeeded', result: { shop: { myshopify_domain: shop.domain, name: shop.name } } });
    // Tokens and the app secret never reach logs.
    const log = sync.output.join('\n');
    expect(log).not.toContain(stored!.value.access_token);
    expect(log).not.toContain(stored!.value.refresh_token);
    expect(log).not.toContain(sim.apiSecret);
  });

  it('refuses a callback with a bad HMAC, a tampered or expired state, or another shop: 400, nothing stored, nothing linked', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop();
    const other = sim.addShop();
    const exchanges = sim.oauth.codeExchanges;
    const badHmac = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}`, { tamper: (u) => u.searchParams.set('hmac', '0'.repeat(64)) });
    expect(badHmac.status).toBe(400);
    expect(badHmac.body).toContain('not signed by Shopify');
    // A state altered and re-signed as if by Shopify (the HMAC passes; the seal does not).
    const resign = (u: URL, change: (p: Record<string, string>) => void) => {
      const p = Object.fromEntries(u.searchParams);
      delete p.hmac;
      change(p);
      for (const k of [...u.searchParams.keys()]) u.searchParams.delete(k);
      for (const [k, v] of Object.entries({ ...p, hmac: signQuery(sim.apiSecret, p) })) u.searchParams.set(k, v);
    };
    const badState = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}`, { tamper: (u) => resign(u, (p) => (p.state = `${p.state!.slice(0, -4)}AAAA`)) });
    expect(badState.status).toBe(400);
    expect(badState.body).toContain('not valid');
    const otherShop = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}`, { tamper: (u) => resign(u, (p) => (p.shop = other.domain)) });
    expect(otherShop.status).toBe(400);
    expect(sim.oauth.codeExchanges).toBe(exchanges);
    expect(await vault.get(secretPaths.workspace(ws, 'shopify'))).toBeNull();
    const links = await openLinks(infra);
    expect(links.get(linkKey('shopify', shop.domain))).toBeUndefined();
    await links.close();
    // A bad shop or workspace never leaves the hub.
    expect((await fetch(`${sync.url}/shopify/install?shop=evil.example.com&workspace=${ws}`, { redirect: 'manual', headers: BROWSER })).status).toBe(400);
    expect((await fetch(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=Bad.WS`, { redirect: 'manual', headers: BROWSER })).status).toBe(400);
  });

  it('syncs orders through cursor pages into the ingest inbox, in the webhook payload shape, with a sync.completed event', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop(undefined, { orders: 12 });
    await install(ws, shop);
    const out = await send(ws, 'orders.sync', { mode: 'pages' });
    expect(out).toMatchObject({ status: 'succeeded', result: { entity: 'orders', mode: 'pages', count: 12, pages: 3, resumed: false } });
    const records = await inbox(shop.domain, 12);
    const orders = records.filter((d) => d.headers['x-shopify-topic'] === 'orders/updated');
    for (const o of shop.orders) {
      const d = orders.find((x) => x.key === `shopify:${shop.domain}:orders:${o.id}`);
      expect(d, `order ${o.id}`).toBeDefined();
      expect(d!).toMatchObject({ route: 'shopify', origin: 'poll', headers: { 'x-shopify-shop-domain': shop.domain, 'x-shopify-webhook-id': `poll:orders:${o.id}:${o.updatedAt}` } });
      expect(JSON.parse(d!.body.toString())).toMatchObject({ id: o.id, admin_graphql_api_id: `gid://shopify/Order/${o.id}`, name: o.name, updated_at: o.updatedAt, line_items: [{ quantity: o.lineItems[0]!.quantity }] });
    }
    const done = (await events(ws, 'sync', 'completed', 1)).map((e) => JSON.parse(e.payload_json));
    expect(done).toContainEqual(expect.objectContaining({ entity: 'orders', count: 12, trigger: 'command', shop: shop.domain }));
  });
});

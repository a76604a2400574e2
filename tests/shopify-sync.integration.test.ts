import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaTable } from '../shared/bus/table/table.ts';
import { topics } from '../shared/bus/topics.ts';
import type { IncomingRecord } from '../shared/bus/types.ts';
import { createHubClient, type HubClient } from '../shared/commands/client.ts';
import { defaultOutcomeTopic } from '../shared/commands/outcome.ts';
import { openApprovals, openWorkspaceConnectors, wsConnectorKey, type Approval } from '../shared/commands/state.ts';
import { fromInboxRecord } from '../shared/ingest/inbox.ts';
import { linkKey, openLinks } from '../shared/links.ts';
import { secretPaths } from '../shared/secrets/store.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { CONNECTIONS_TOPIC } from '../services/shopify-sync/state/connections.ts';
import { SYNC_STATE_TOPIC } from '../services/shopify-sync/state/sync-state.ts';
import { WEBHOOK_TOPICS } from '../services/shopify-sync/oauth/install.ts';
import { connectGrant, infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';
import { startIngester, type RunningIngester } from './helpers/ingester.ts';
import { serviceEnv } from './helpers/principals.ts';
import { approveAsAdmin } from './helpers/tiktok.ts';
import { browseInstall, BROWSER, publishInternal, simEnv, startShopifySync, type RunningShopifySync } from './helpers/shopify.ts';
import { signQuery, startShopifySimulator, type ShopifySimulator } from './simulators/shopify/index.ts';
import { orderWebhookBody, type SimShop } from './simulators/shopify/state.ts';
import { touch } from './simulators/shopify/graphql.ts';
import { forgetConnections } from './helpers/connections.ts';
import { startReauthGate } from './helpers/reauth-gate.ts';
import { untilWith } from './helpers/until.ts';

const env = infraEnv();
const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });

describe('shopify-sync against a Shopify simulator through @shopify/shopify-api: install, reads into the inbox, refresh, writes behind approval, lifecycle', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sim: ShopifySimulator;
  let sync: RunningShopifySync;
  let ingester: RunningIngester;
  // This file's own inbox, shared by its ingester (edge and processor) and its shopify-sync.
  const inboxTopic = `ionflux.inbox.${uid('shin')}`;
  let client: HubClient;
  let approvals: KafkaTable<Approval>;
  const workspaces: string[] = [];

  const newWorkspace = () => {
    const ws = uid('ws');
    workspaces.push(ws);
    return ws;
  };
  const send = (ws: string, action: string, params: Record<string, unknown> = {}, timeoutMs = 60_000) => client.send({ workspace_id: ws, agent_id: 'agent-s', service: 'shopify', action, params }, { timeoutMs });
  const events = async (ws: string, entity: string, action: string, atLeast = 0, timeoutMs = 15_000) => Promise.all((await readAll(infra.bus, topics.event('shopify', ws, entity, action), { atLeast, timeoutMs })).map(async (r) => infra.codec.decode(r.value!)));
  const until = untilWith(() => `simulator saw: ${sim.requests.slice(-10).map((x) => `${x.method} ${x.path} ${x.root ?? ''} ${x.status}`).join(', ')}\n${sync.output.slice(-15).join('\n')}`);
  /** The inbox records of one shop (its appends by this worker), decoded. */
  const inbox = async (shop: string, atLeast = 0) => {
    const all = await readAll(infra.bus, inboxTopic);
    const mine = (rs: IncomingRecord[]) => rs.map((r) => fromInboxRecord(r)!).filter((d) => d?.headers['x-shopify-shop-domain'] === shop);
    if (mine(all).length >= atLeast) return mine(all);
    await until(`${atLeast} inbox records of ${shop}`, async () => mine(await readAll(infra.bus, inboxTopic)).length >= atLeast, 60_000);
    return mine(await readAll(infra.bus, inboxTopic));
  };
  /** The final outcome of a command (not its awaiting_approval), from its outcome topic. */
  const finalOutcome = async (ws: string, commandId: string, timeoutMs = 60_000) => {
    let found!: (e: Record<string, unknown>) => void;
    const got = new Promise<Record<string, unknown>>((resolve) => (found = resolve));
    const sub = await client.subscribe(defaultOutcomeTopic('shopify', ws), (e) => {
      if (e.correlation_id === commandId && !e.event_type.endsWith('awaiting_approval')) found(JSON.parse(e.payload_json) as Record<string, unknown>);
    });
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no outcome for ${commandId}:\n${sync.output.slice(-15).join('\n')}`)), timeoutMs).unref());
    const first = Promise.race([got, timeout]).finally(() => void sub.close());
    first.catch(() => undefined); // reported where it is awaited
    return { outcome: first };
  };
  /** Sends an external write, checks it waits for approval and nothing reached Shopify, approves it, returns its outcome. */
  const approved = async (ws: string, action: string, params: Record<string, unknown>) => {
    const asked = await send(ws, action, params);
    expect(asked).toMatchObject({ status: 'awaiting_approval' });
    await expect.poll(() => approvals.get(asked.approval_id!)?.status, { timeout: 10_000 }).toBe('pending');
    const { outcome } = await finalOutcome(ws, asked.command_id);
    await approveAsAdmin({ bus: infra.bus, codec: infra.codec, approvals }, asked.approval_id!);
    return (await outcome) as { status: string; result?: Record<string, unknown>; error?: { code: string; message: string } };
  };
  const install = async (ws: string, shop: SimShop) => {
    const r = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}&grant=${await connectGrant('shopify', ws)}`);
    expect(r.status, r.body).toBe(200);
    return r;
  };

  beforeAll(async () => {
    infra = await realInfra('shopify-test');
    sim = await startShopifySimulator({ bulkDelayMs: 300 });
    ingester = await startIngester({ SHOPIFY_API_SECRET: sim.apiSecret, IONFLUX_INBOX_TOPIC: inboxTopic });
    // As its own Kafka principal and OpenBao token, the way `make up` runs it: the ACLs are part of what is tested.
    sync = await startShopifySync({
      ...serviceEnv('shopify-sync'),
      IONFLUX_INBOX_TOPIC: inboxTopic,
      ...simEnv(sim),
      SHOPIFY_SYNC_GROUP: `ionflux-shopify-sync-${uid('t')}`,
      SHOPIFY_WEBHOOK_URL: `${ingester.url}/webhooks/shopify`,
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
    await ingester?.stop();
    // Leave no installation behind for later runs' owners to poll.
    await forgetConnections({ vault, bus: infra?.bus, vendor: 'shopify', connectionsTopic: CONNECTIONS_TOPIC }, workspaces);
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
    expect(printed.authorization_url).toMatch(new RegExp(`^${sync.url}/shopify/install\\?shop=${shop.domain}&workspace=${ws}&grant=[\\w-]+\\.[\\w-]+$`));

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
    expect(new Set(shop.webhooks.map((w) => w.uri))).toEqual(new Set([`${ingester.url}/webhooks/shopify`]));
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
    const badHmac = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}&grant=${await connectGrant('shopify', ws)}`, { tamper: (u) => u.searchParams.set('hmac', '0'.repeat(64)) });
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
    const badState = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}&grant=${await connectGrant('shopify', ws)}`, { tamper: (u) => resign(u, (p) => (p.state = `${p.state!.slice(0, -4)}AAAA`)) });
    expect(badState.status).toBe(400);
    expect(badState.body).toContain('not valid');
    const otherShop = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}&grant=${await connectGrant('shopify', ws)}`, { tamper: (u) => resign(u, (p) => (p.shop = other.domain)) });
    expect(otherShop.status).toBe(400);
    // An install link's authorize page handed to the shop's owner by someone else: the owner's
    // browser comes back without the cookie of the one that opened it.
    const otherBrowser = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}&grant=${await connectGrant('shopify', ws)}`, { otherBrowser: true });
    expect(otherBrowser.status).toBe(400);
    expect(otherBrowser.body).toContain('same browser');
    expect(sim.oauth.codeExchanges).toBe(exchanges);
    expect(await vault.get(secretPaths.workspace(ws, 'shopify'))).toBeNull();
    const links = await openLinks(infra);
    expect(links.get(linkKey('shopify', shop.domain))).toBeUndefined();
    await links.close();
    // A bad shop or workspace never leaves the hub.
    expect((await fetch(`${sync.url}/shopify/install?shop=evil.example.com&workspace=${ws}`, { redirect: 'manual', headers: BROWSER })).status).toBe(400);
    expect((await fetch(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=Bad.WS`, { redirect: 'manual', headers: BROWSER })).status).toBe(400);
    // Only a link the hub issued for this workspace begins an install: whoever completes one binds their shop to it.
    const plain = `${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}`;
    const valid = await connectGrant('shopify', ws);
    for (const url of [plain, `${plain}&grant=${await connectGrant('shopify', uid('ws'))}`, `${plain}&grant=${await connectGrant('tiktok', ws)}`, `${plain}&grant=${valid.slice(0, -3)}${valid.endsWith('AAA') ? 'BBB' : 'AAA'}`]) {
      const res = await fetch(url, { redirect: 'manual', headers: BROWSER });
      expect(res.status).toBe(403);
      expect(await res.text()).toContain(`ionflux connect shopify --workspace ${ws} --shop ${shop.domain}`);
    }
    expect(sim.oauth.codeExchanges).toBe(exchanges);
  });

  it('refuses to install a shop already linked to another workspace (409): nothing stored for the second', async () => {
    const first = newWorkspace();
    const second = newWorkspace();
    const shop = sim.addShop();
    await install(first, shop);
    const r = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${second}&grant=${await connectGrant('shopify', second)}`);
    expect(r.status).toBe(409);
    expect(r.body).toContain(`connected to another workspace (${first})`);
    expect(await vault.get(secretPaths.workspace(second, 'shopify'))).toBeNull();
    const links = await openLinks(infra);
    expect(links.get(linkKey('shopify', shop.domain))?.workspaceId).toBe(first);
    await links.close();
  });

  it('syncs orders through cursor pages into the ingest inbox, in the webhook payload shape, with a sync.completed event', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop(undefined, { orders: 12 });
    await install(ws, shop);
    const out = await send(ws, 'orders.sync', { mode: 'pages' });
    // 3 orders a page, not SHOPIFY_PAGE_SIZE's 5: with their 50 line items 4 would cost more than Shopify's single-query limit.
    expect(out).toMatchObject({ status: 'succeeded', result: { entity: 'orders', mode: 'pages', count: 12, pages: 4, resumed: false } });
    const records = await inbox(shop.domain, 12);
    const orders = records.filter((d) => d.headers['x-shopify-topic'] === 'orders/updated');
    for (const o of shop.orders) {
      const d = orders.find((x) => x.key === `shopify:${shop.domain}:orders:${o.id}`);
      expect(d, `order ${o.id}`).toBeDefined();
      expect(d!).toMatchObject({ route: 'shopify', origin: 'poll', headers: { 'x-shopify-shop-domain': shop.domain, 'x-shopify-webhook-id': expect.stringMatching(new RegExp(`^poll:orders:${o.id}:${o.updatedAt}:[0-9a-f]{16}$`)) } });
      expect(JSON.parse(d!.body.toString())).toMatchObject({ id: o.id, admin_graphql_api_id: `gid://shopify/Order/${o.id}`, name: o.name, updated_at: o.updatedAt, line_items: [{ quantity: o.lineItems[0]!.quantity }] });
    }
    const done = (await events(ws, 'sync', 'completed', 1)).map((e) => JSON.parse(e.payload_json));
    expect(done).toContainEqual(expect.objectContaining({ entity: 'orders', count: 12, trigger: 'command', shop: shop.domain }));
  });

  it('a webhook and a poll of the same order version give one event; a newer version gives the next', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop(undefined, { orders: 3 });
    await install(ws, shop);
    const order = shop.orders[1]!;
    const v1 = touch(shop, 'orders', order.id, (o: { tags: string[] }) => (o.tags = ['webhook-and-poll']));
    // Shopify's webhook of that version reaches the ingester; then a sync polls the same version.
    // Sent until the ingester routes the shop (it learns the new link from ionflux.state.links); retries share the webhook id.
    const webhookId = uid('wh');
    await until('the ingester to take the webhook', async () => (await sim.sendWebhook(`${ingester.url}/webhooks/shopify`, 'orders/updated', shop.domain, orderWebhookBody(order), webhookId)).status < 300);
    expect(await send(ws, 'orders.sync', { since: v1, mode: 'pages' })).toMatchObject({ status: 'succeeded', result: { count: 1 } });
    await ingester.drained();
    const ofOrder = async () => (await events(ws, 'orders', 'updated', 1)).map((e) => JSON.parse(e.payload_json) as { id: number; updated_at: string; tags: string }).filter((p) => p.id === order.id);
    await until('the order event', async () => (await ofOrder()).length >= 1);
    expect((await ofOrder()).map((p) => p.updated_at)).toEqual([v1]);

    // A newer version, seen by polling only (its webhook was missed): the next event, after the first.
    await new Promise((r) => setTimeout(r, 1100));
    const v2 = touch(shop, 'orders', order.id, (o: { tags: string[] }) => (o.tags = ['polled']));
    expect(await send(ws, 'orders.sync', { since: v1, mode: 'pages' })).toMatchObject({ status: 'succeeded' });
    await ingester.drained();
    await until('the newer version', async () => (await ofOrder()).length >= 2);
    const seen = await ofOrder();
    expect(seen.map((p) => p.updated_at)).toEqual([v1, v2]);
    expect(seen[1]!.tags).toBe('polled');

    // Shopify's late webhook of v1 (another delivery of it) after v2 was published: the vendor gets
    // its 2xx, and no older version follows the newer one on the topic.
    const late = await sim.sendWebhook(`${ingester.url}/webhooks/shopify`, 'orders/updated', shop.domain, { ...orderWebhookBody(order), updated_at: v1 }, uid('wh'));
    expect(late.status).toBe(200);
    await ingester.drained();
    expect((await ofOrder()).map((p) => p.updated_at)).toEqual([v1, v2]);
  });

  it('refreshes an expired offline token through the SDK and goes on (the refresh token rotates)', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop();
    await install(ws, shop);
    const before = await vault.get(secretPaths.workspace(ws, 'shopify'));
    const refreshes = sim.oauth.refreshes;
    sim.expireAccessTokens(shop.domain);
    expect(await send(ws, 'shop.get')).toMatchObject({ status: 'succeeded', result: { shop: { myshopify_domain: shop.domain } } });
    expect(sim.oauth.refreshes).toBe(refreshes + 1);
    const after = await vault.get(secretPaths.workspace(ws, 'shopify'));
    expect(after!.value.access_token).not.toBe(before!.value.access_token);
    expect(after!.value.refresh_token).not.toBe(before!.value.refresh_token);
    expect(sim.tokenIsLive(shop.domain, after!.value.access_token!)).toBe(true);
    expect(sync.output.join('\n')).not.toContain(after!.value.access_token);
  });

  it('the shop\'s owner refreshes a token before it expires, without any command asking', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop();
    // A token that expires 3 s after the 5-minute refresh margin begins.
    sim.nextGrantAccessTtlS(303);
    await install(ws, shop);
    const first = await vault.get(secretPaths.workspace(ws, 'shopify'));
    await until('the proactive refresh', async () => (await vault.get(secretPaths.workspace(ws, 'shopify')))?.value.access_token !== first!.value.access_token, 30_000);
    const after = await vault.get(secretPaths.workspace(ws, 'shopify'));
    expect(JSON.parse(after!.value.meta!).access_expires_at).toBeGreaterThan(Date.now() + 3000_000);
    expect(sim.tokenIsLive(shop.domain, after!.value.access_token!)).toBe(true);
    expect(sim.tokenIsLive(shop.domain, first!.value.access_token!)).toBe(false);
  });

  it('an approved themes.rollback publishes the chosen theme once; writes wait for approval; user errors fail with Shopify\'s message', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop(undefined, { themes: 3 });
    await install(ws, shop);
    const listed = await send(ws, 'themes.list');
    expect(listed).toMatchObject({ status: 'succeeded' });
    const themes = (listed.result as { themes: { id: string; role: string; name: string }[] }).themes;
    const main = themes.find((t) => t.role === 'MAIN')!;
    const backup = themes.find((t) => t.role !== 'MAIN')!;
    const publishes = sim.count('themePublish');

    const out = await approved(ws, 'themes.rollback', { theme_id: backup.id.split('/').pop() });
    expect(out).toMatchObject({ status: 'succeeded', result: { published: { id: backup.id, role: 'MAIN' }, previous_main: { id: main.id } } });
    expect(sim.count('themePublish')).toBe(publishes + 1);
    expect(shop.themes.find((t) => `gid://shopify/OnlineStoreTheme/${t.id}` === backup.id)!.role).toBe('MAIN');

    // Shopify's userErrors: the failed outcome carries its message.
    const blank = await approved(ws, 'products.update', { product_id: String(shop.products[0]!.id), title: ' ' });
    expect(blank).toMatchObject({ status: 'failed', error: { code: 'shopify_user_error' } });
    expect(blank.error!.message).toContain("title: Title can't be blank");
    const gone = await approved(ws, 'script_tags.delete', { script_tag_id: '1' });
    expect(gone).toMatchObject({ status: 'failed', error: { code: 'shopify_user_error' } });
    expect(gone.error!.message).toContain('Script tag does not exist');
    expect(sim.count('themePublish')).toBe(publishes + 1);
  });

  it('a worker killed (-9) mid-sync resumes the command from its checkpoint, not from the first page', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop(undefined, { products: 40 });
    await install(ws, shop);
    // The first scheduled poll reads the whole shop; after it, polls ask only for changes (a `query` filter).
    await inbox(shop.domain, 40);
    await until('the first poll to finish', () => sim.requests.some((r) => r.shop === shop.domain && r.root === 'products' && typeof r.variables?.query === 'string'));
    sim.delay(500, shop.domain);
    const t0 = Date.now();
    const fullFirstPages = () => sim.requests.filter((r) => r.shop === shop.domain && r.root === 'products' && r.at >= t0 && r.variables?.query === null && r.variables?.after === null).length;
    const fullPages = () => sim.requests.filter((r) => r.shop === shop.domain && r.root === 'products' && r.at >= t0 && r.variables?.query === null).length;
    const started = send(ws, 'products.sync', { mode: 'pages' }, 120_000);
    await until('three pages of the command', () => fullPages() >= 3, 60_000);
    await sync.kill();
    sim.delay(0, shop.domain);
    await sync.start();
    const out = await started;
    expect(out).toMatchObject({ status: 'succeeded', result: { entity: 'products', count: 40, pages: 8, resumed: true } });
    // One first page in all: the restarted worker went on from the cursor it had recorded.
    expect(fullFirstPages()).toBe(1);
    expect(fullPages()).toBeLessThan(8 + 2);
  }, 180_000); // a restart waits for the killed member's consumer-group sessions to expire

  it('syncs a whole catalog through Bulk Operations (JSONL assembled, children under parents)', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop(undefined, { products: 30 });
    await install(ws, shop);
    const runs = sim.count('bulkOperationRunQuery');
    const out = await send(ws, 'products.sync', { mode: 'bulk' });
    expect(out).toMatchObject({ status: 'succeeded', result: { entity: 'products', mode: 'bulk', count: 30 } });
    expect(sim.count('bulkOperationRunQuery')).toBe(runs + 1);
    const records = (await inbox(shop.domain, 30)).filter((d) => d.headers['x-shopify-topic'] === 'products/update');
    const bodies = records.map((d) => JSON.parse(d.body.toString()) as { id: number; variants: unknown[] });
    for (const p of shop.products) expect(bodies.find((b) => b.id === p.id)?.variants).toHaveLength(p.variants.length);
  });

  it('polls on schedule: a change Shopify sent no webhook for reaches the inbox', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop(undefined, { orders: 2 });
    await install(ws, shop);
    // The first poll over: it read every entity (5 products, 2 orders, 5 customers, 5 inventory
    // items at 2 locations). A change made while it still ran could be read by it, and what it had
    // still to append would then count as appended by the polls after.
    await inbox(shop.domain, 5 + 2 + 5 + 5 * 2);
    const order = shop.orders[0]!;
    const v = touch(shop, 'orders', order.id, (o: { note: string | null }) => (o.note = 'changed without a webhook'));
    await until('the polled change', async () => (await inbox(shop.domain)).some((d) => d.headers['x-shopify-webhook-id']?.startsWith(`poll:orders:${order.id}:${v}:`)), 30_000);
    // Polls that find nothing new append nothing (the entity at the watermark is not read in again):
    // two more polls of this shop's orders, each ended before the next began.
    const orderPolls = () => sim.requests.filter((r) => r.shop === shop.domain && r.root === 'orders' && r.status === 200).length;
    await until('the poll after the change', () => orderPolls() > 0);
    const appended = (await inbox(shop.domain)).length;
    const polls = orderPolls();
    await until('two more polls of the shop', () => orderPolls() >= polls + 2, 30_000);
    expect((await inbox(shop.domain)).length).toBe(appended);
  });

  it('app/uninstalled forgets the token, unlinks the shop, stops polling and audits', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop();
    // Another installed shop, whose polls (every 2 s) show that polling goes on.
    const clock = sim.addShop();
    await install(newWorkspace(), clock);
    await install(ws, shop);
    await until('a scheduled poll', () => sim.requests.some((r) => r.shop === shop.domain && r.root === 'orders'));
    await publishInternal(infra.bus, infra.codec, ws, 'shopify.app.uninstalled', { id: shop.id, name: shop.name, domain: shop.domain, myshopify_domain: shop.domain });
    await until('the token to be forgotten', async () => (await vault.get(secretPaths.workspace(ws, 'shopify'))) === null);
    const wsc = await openWorkspaceConnectors(infra);
    await until('the workspace to read disconnected', () => wsc.get(wsConnectorKey(ws, 'shopify'))?.connection === 'disconnected');
    await wsc.close();
    const links = await openLinks(infra);
    expect(links.get(linkKey('shopify', shop.domain))).toBeUndefined();
    await links.close();
    const audit = (await Promise.all((await readAll(infra.bus, topics.audit, { atLeast: 1 })).map((x) => infra.codec.decode(x.value!)))).filter((e) => e.workspace_id === ws);
    expect(audit.map((e) => JSON.parse(e.payload_json) as { kind: string; outcome?: string })).toContainEqual(expect.objectContaining({ kind: 'disconnect', outcome: 'uninstalled' }));
    // No more polling of that shop: after a round of the other shop's polls (a poll of this one that
    // was under way has ended by then), two more rounds of it, and none of this one.
    const rounds = () => sim.requests.filter((r) => r.shop === clock.domain && r.root === 'orders').length;
    let r0 = rounds();
    await until('a poll round', () => rounds() > r0, 30_000);
    const seen = sim.requests.filter((r) => r.shop === shop.domain).length;
    r0 = rounds();
    await until('two more poll rounds', () => rounds() >= r0 + 2, 30_000);
    expect(sim.requests.filter((r) => r.shop === shop.domain).length).toBe(seen);
    expect(await send(ws, 'shop.get')).toMatchObject({ status: 'failed', error: { code: 'not_connected' } });
  });

  it('compliance topics: data_request reports what the hub holds, customers/redact and shop/redact tombstone it', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop(undefined, { customers: 3 });
    await install(ws, shop);
    expect(await send(ws, 'customers.sync', { mode: 'pages' })).toMatchObject({ status: 'succeeded', result: { count: 3 } });
    const customer = shop.customers[0]!;
    const markerKey = `customer:${ws}:${customer.id}`;
    const latest = async (key: string) => (await readAll(infra.bus, SYNC_STATE_TOPIC)).filter((r) => r.key?.toString() === key).at(-1);
    expect((await latest(markerKey))?.value).toBeTruthy();
    const request = { shop_id: shop.id, shop_domain: shop.domain, orders_requested: [], customer: { id: customer.id, email: customer.email }, data_request: { id: 9001 } };

    await publishInternal(infra.bus, infra.codec, ws, 'shopify.customers.data_requested', request);
    const reports = async () => (await events(ws, 'customers', 'data_report')).map((e) => JSON.parse(e.payload_json) as { customer_id: string; held: { key: string }[]; retention: string; data_request_id: string });
    await until('the data report', async () => (await reports()).length >= 1);
    expect((await reports())[0]).toMatchObject({ customer_id: String(customer.id), data_request_id: '9001', held: [{ key: markerKey }] });
    expect((await reports())[0]!.retention).toContain('retention');

    await publishInternal(infra.bus, infra.codec, ws, 'shopify.customers.redacted', { shop_id: shop.id, shop_domain: shop.domain, customer: { id: customer.id, email: customer.email }, orders_to_redact: [] });
    await until('the customer marker tombstoned', async () => (await latest(markerKey))?.value === null);
    await publishInternal(infra.bus, infra.codec, ws, 'shopify.customers.data_requested', { ...request, data_request: { id: 9002 } });
    await until('the second report', async () => (await reports()).length >= 2);
    expect((await reports()).find((r) => r.data_request_id === '9002')).toMatchObject({ held: [] });

    await publishInternal(infra.bus, infra.codec, ws, 'shopify.shop.redacted', { shop_id: shop.id, shop_domain: shop.domain });
    await until('the token to be forgotten', async () => (await vault.get(secretPaths.workspace(ws, 'shopify'))) === null);
    const others = `customer:${ws}:${shop.customers[1]!.id}`;
    await until('every marker tombstoned', async () => (await latest(others))?.value === null);
    const audit = (await Promise.all((await readAll(infra.bus, topics.audit, { atLeast: 1 })).map((x) => infra.codec.decode(x.value!)))).filter((e) => e.workspace_id === ws).map((e) => JSON.parse(e.payload_json) as { action?: string; outcome?: string });
    expect(audit).toEqual(expect.arrayContaining([expect.objectContaining({ action: 'customers.redact' }), expect.objectContaining({ action: 'customers.data_request' }), expect.objectContaining({ outcome: 'redacted' })]));
  });

  it('the nightly full sync runs through Bulk Operations for a shop that never had one, and records when', async () => {
    // A deployment with the nightly schedule on, in place of this file's (whose polls would count
    // as the shop's first full sync): it runs last.
    await sync.stop();
    const nightly = await startShopifySync({ ...serviceEnv('shopify-sync'), ...simEnv(sim), IONFLUX_INBOX_TOPIC: inboxTopic, SHOPIFY_SYNC_GROUP: `ionflux-shopify-sync-${uid('n')}`, SHOPIFY_POLL_INTERVAL_MS: '0', SHOPIFY_FULL_SYNC_INTERVAL_MS: '3600000', SHOPIFY_BULK_POLL_MS: '200', SHOPIFY_WEBHOOK_URL: `${ingester.url}/webhooks/shopify` });
    try {
      const ws = newWorkspace();
      const shop = sim.addShop(undefined, { products: 4, orders: 3, customers: 2, inventory: 2 });
      const r = await browseInstall(`${nightly.url}/shopify/install?shop=${shop.domain}&workspace=${ws}&grant=${await connectGrant('shopify', ws)}`);
      expect(r.status, r.body).toBe(200);
      const completed = async () => (await events(ws, 'sync', 'completed')).map((e) => JSON.parse(e.payload_json) as { entity: string; trigger: string; mode: string; count: number });
      await until('a nightly run of every entity', async () => (await completed()).filter((c) => c.trigger === 'nightly').length >= 4, 60_000);
      expect(Object.fromEntries((await completed()).filter((c) => c.trigger === 'nightly').map((c) => [c.entity, [c.mode, c.count]]))).toEqual({ products: ['bulk', 4], orders: ['bulk', 3], customers: ['bulk', 2], inventory: ['bulk', 2] });
      const records = await inbox(shop.domain, 4 + 3 + 2 + 2 * 2);
      expect(new Set(records.map((d) => d.headers['x-shopify-topic']))).toEqual(new Set(['products/update', 'orders/updated', 'customers/update', 'inventory_levels/update']));
      const state = await readAll(infra.bus, SYNC_STATE_TOPIC);
      for (const entity of ['products', 'orders', 'customers', 'inventory']) {
        const full = state.filter((x) => x.key?.toString() === `full:${ws}:${entity}`).at(-1);
        expect(JSON.parse(full!.value!.toString()), entity).toMatchObject({ kind: 'full' });
      }
    } finally {
      if (process.env.SHOPIFY_TEST_LOG) (await import('node:fs')).writeFileSync(`${process.env.SHOPIFY_TEST_LOG}.nightly`, nightly.output.join('\n'));
      await nightly.stop();
    }
  }, 120_000);
});

// Two install callbacks for one shop at once (shared/security/oauth-claim.ts): on two instances
// of one deployment, their code exchanges held at a gate in front of the simulator.
import { startExchangeGate, type ExchangeGate } from './helpers/exchange-gate.ts';
import { cookiesOf } from './helpers/infra.ts';
import { CLAIMS_TOPIC } from '../shared/security/oauth-claim.ts';

describe('shopify-sync: install callbacks for one shop racing on two instances', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sim: ShopifySimulator;
  let gate: ExchangeGate;
  let hubs: RunningShopifySync[] = [];
  const workspaces: string[] = [];
  const newWorkspace = () => {
    const ws = uid('ws');
    workspaces.push(ws);
    return ws;
  };

  beforeAll(async () => {
    infra = await realInfra('shopify-race-test');
    sim = await startShopifySimulator();
    // Code exchanges only: a refresh (grant_type=refresh_token) goes straight through.
    gate = await startExchangeGate(sim.url, (method, path, body) => method === 'POST' && path.endsWith('/admin/oauth/access_token') && !body.includes('refresh_token'));
    // Both behind one public address, as behind a load balancer; polling off (only installs are tested).
    const deployment = { ...serviceEnv('shopify-sync'), ...simEnv(sim), SHOPIFY_ADMIN_BASE_URL: gate.url, SHOPIFY_SYNC_GROUP: `ionflux-shopify-sync-${uid('r')}`, PUBLIC_BASE_URL: 'http://hub.test', SHOPIFY_POLL_INTERVAL_MS: '0', SHOPIFY_FULL_SYNC_INTERVAL_MS: '0', IONFLUX_INBOX_TOPIC: `ionflux.inbox.${uid('shr')}` };
    hubs = await Promise.all([startShopifySync(deployment), startShopifySync(deployment)]);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(hubs.map((h) => h.stop()));
    await forgetConnections({ vault, bus: infra?.bus, vendor: 'shopify', connectionsTopic: CONNECTIONS_TOPIC }, workspaces);
    await gate?.close();
    await sim?.close();
    await infra?.close();
  });

  /** A browser up to Shopify's redirect back: the install link opened and authorized, the callback not yet visited. */
  const authorized = async (ws: string, shop: SimShop) => {
    const first = await fetch(`${hubs[0]!.url}/shopify/install?shop=${shop.domain}&workspace=${ws}&grant=${await connectGrant('shopify', ws)}`, { redirect: 'manual', headers: BROWSER });
    expect(first.status).toBe(302);
    const consent = await fetch(first.headers.get('location')!, { redirect: 'manual', headers: BROWSER });
    expect(consent.status).toBe(302);
    return { callback: new URL(consent.headers.get('location')!), headers: { ...BROWSER, ...cookiesOf(first) } };
  };
  /** The callback as the load balancer hands it to one instance. */
  const visit = async (hub: RunningShopifySync, a: Awaited<ReturnType<typeof authorized>>) => {
    const res = await fetch(`${hub.url}${a.callback.pathname}${a.callback.search}`, { redirect: 'manual', headers: a.headers });
    return { status: res.status, body: await res.text() };
  };
  /**
   * Both callbacks at once, one per instance. Their code exchanges are held until both reached
   * Shopify, or until one callback was answered without exchanging (refused as the other's
   * claim holds the shop): either way both callbacks are past their checks before either's token
   * comes back.
   */
  const race = async (a: Awaited<ReturnType<typeof authorized>>, b: Awaited<ReturnType<typeof authorized>>) => {
    gate.hold();
    const answers = [visit(hubs[0]!, a), visit(hubs[1]!, b)];
    await Promise.race([gate.reached(2), ...answers]);
    gate.release();
    return Promise.all(answers);
  };
  const latestByKey = async (topic: string) => {
    const latest = new Map<string, Buffer | null>();
    for (const r of await readAll(infra.bus, topic)) latest.set(r.key!.toString(), r.value);
    return latest;
  };
  const connectionsOf = async (shop: string) => [...(await latestByKey(CONNECTIONS_TOPIC))].filter(([, v]) => v && (JSON.parse(v.toString()) as { shop: string }).shop === shop).map(([k]) => k);

  it('two workspaces: one callback installs the shop, the other is refused (409) before exchanging its code; one link, one token, one connection', async () => {
    const [x, y] = [newWorkspace(), newWorkspace()];
    const shop = sim.addShop();
    const [ax, ay] = [await authorized(x, shop), await authorized(y, shop)];
    const exchanges = sim.oauth.codeExchanges;
    const answers = await race(ax, ay);

    expect(answers.map((r) => r.status).sort(), JSON.stringify(answers)).toEqual([200, 409]);
    const [won, lost] = answers[0]!.status === 200 ? [x, y] : [y, x];
    const refused = answers.find((r) => r.status === 409)!.body;
    expect(refused).toContain(`Shopify was not installed for ${lost}`);
    expect(refused).toMatch(/another workspace \(.+\) right now|under way at the same moment/);
    expect(sim.oauth.codeExchanges - exchanges).toBe(1);
    const links = await openLinks(infra);
    expect(links.get(linkKey('shopify', shop.domain))?.workspaceId).toBe(won);
    await links.close();
    expect(await connectionsOf(shop.domain)).toEqual([won]);
    expect(await vault.get(secretPaths.workspace(lost, 'shopify'))).toBeNull();
    const stored = await vault.get(secretPaths.workspace(won, 'shopify'));
    expect(sim.tokenIsLive(shop.domain, stored!.value.access_token!)).toBe(true);
    // The claim went with the install: the winner's workspace installs the shop again (on the other instance), the other is still refused.
    expect((await latestByKey(CLAIMS_TOPIC)).get(linkKey('shopify', shop.domain))).toBeNull();
    expect((await visit(hubs[1]!, await authorized(won, shop))).status).toBe(200);
    expect(await visit(hubs[0]!, await authorized(lost, shop))).toMatchObject({ status: 409, body: expect.stringContaining(`connected to another workspace (${won})`) });
  }, 60_000);

  it('one workspace twice (the link opened in two tabs): one install, the other refused (409); the stored token is the installed one', async () => {
    const ws = newWorkspace();
    const shop = sim.addShop();
    const [a, b] = [await authorized(ws, shop), await authorized(ws, shop)];
    const exchanges = sim.oauth.codeExchanges;
    const answers = await race(a, b);

    expect(answers.map((r) => r.status).sort(), JSON.stringify(answers)).toEqual([200, 409]);
    expect(answers.find((r) => r.status === 409)!.body).toMatch(new RegExp(`another install of ${shop.domain.replace(/\./g, '\\.')} (for ${ws} is under way|was under way at the same moment)`));
    expect(sim.oauth.codeExchanges - exchanges).toBe(1);
    expect(await connectionsOf(shop.domain)).toEqual([ws]);
    // The token in the secret store is the generation the connection record describes.
    const stored = await vault.get(secretPaths.workspace(ws, 'shopify'));
    const connection = JSON.parse((await latestByKey(CONNECTIONS_TOPIC)).get(ws)!.toString()) as { issued_at: number };
    expect(JSON.parse(stored!.value.meta!).issued_at).toBe(connection.issued_at);
    expect(sim.tokenIsLive(shop.domain, stored!.value.access_token!)).toBe(true);
    const installed = (await readAll(infra.bus, topics.event('shopify', ws, 'app', 'installed'), { atLeast: 1 })).length;
    expect(installed).toBe(1);
  }, 60_000);
});

/**
 * A refresh Shopify refuses racing a reinstall: the refusal used to mark whatever connection record
 * it found, the reinstall's included, so the shop stopped being polled (and the command failed
 * needs_reauthorization) until the admin installed it once more. A gate in front of the
 * simulator holds the refresh grant while the admin reinstalls.
 */
describe('shopify-sync: a refused refresh racing a reinstall', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sim: ShopifySimulator;
  let gate: ExchangeGate;
  let sync: RunningShopifySync;
  let client: HubClient;
  const workspaces: string[] = [];
  const until = untilWith(() => sync.output.slice(-15).join('\n'));

  beforeAll(async () => {
    infra = await realInfra('shopify-reauth-race-test');
    sim = await startShopifySimulator();
    // Refresh grants only: installs' code exchanges go straight through.
    gate = await startExchangeGate(sim.url, (method, path, body) => method === 'POST' && path.endsWith('/admin/oauth/access_token') && body.includes('refresh_token'));
    sync = await startShopifySync({ ...serviceEnv('shopify-sync'), ...simEnv(sim), SHOPIFY_ADMIN_BASE_URL: gate.url, SHOPIFY_SYNC_GROUP: `ionflux-shopify-sync-${uid('q')}`, SHOPIFY_POLL_INTERVAL_MS: '2000', SHOPIFY_FULL_SYNC_INTERVAL_MS: '0', IONFLUX_INBOX_TOPIC: `ionflux.inbox.${uid('shq')}` });
    client = await createHubClient({ brokers: env.brokers, registryUrl: env.registryUrl });
  }, 180_000);

  afterAll(async () => {
    await client?.close();
    await sync?.stop();
    await forgetConnections({ vault, bus: infra?.bus, vendor: 'shopify', connectionsTopic: CONNECTIONS_TOPIC }, workspaces);
    await gate?.close();
    await sim?.close();
    await infra?.close();
  });

  it('the refresh of the old token refused while the admin reinstalls: the reinstall stands, the command and polling go on with its token', async () => {
    const ws = uid('ws');
    workspaces.push(ws);
    const shop = sim.addShop();
    const install = async () => {
      const r = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}&grant=${await connectGrant('shopify', ws)}`);
      expect(r.status, r.body).toBe(200);
    };
    await install();
    gate.hold();
    sim.expireAccessTokens(shop.domain);
    const out = client.send({ workspace_id: ws, agent_id: 'agent-s', service: 'shopify', action: 'shop.get', params: {} }, { timeoutMs: 60_000 });
    await gate.reached(1); // the refresh of the expired token, with its refresh token
    // Shopify will refuse that refresh token (the merchant's old grant is gone); the admin reinstalls before its answer.
    for (const g of sim.grants) if (g.shop === shop.domain) g.revoked = true;
    await install();
    const reinstalled = (await vault.get(secretPaths.workspace(ws, 'shopify')))!.value.access_token!;
    gate.release();

    const done = await out;
    expect(done, JSON.stringify(done.error)).toMatchObject({ status: 'succeeded', result: { shop: { myshopify_domain: shop.domain } } });
    let record: { status: string } | undefined;
    for (const r of await readAll(infra.bus, CONNECTIONS_TOPIC)) if (r.key?.toString() === ws) record = r.value ? JSON.parse(r.value.toString()) : undefined;
    expect(record).toMatchObject({ status: 'active' });
    // Polling goes on with the reinstall's token.
    const polls = () => sim.requests.filter((r) => r.shop === shop.domain && r.root === 'orders' && r.status === 200).length;
    const before = polls();
    await until('two more polls of the shop', () => polls() >= before + 2, 30_000);
    expect((await vault.get(secretPaths.workspace(ws, 'shopify')))!.value.access_token).toBe(reinstalled);
  }, 120_000);
});

/**
 * A command's call refused (401) with its token even once refreshed, while the admin reinstalls:
 * the command core marks the workspace needs_reauth, and a mark made from the old token's refusal
 * used to land over the reinstall (every command then failed needs_reauthorization until the admin
 * installed once more). A gate in front of the simulator holds the command's GraphQL calls;
 * SHOPIFY_TEST_REAUTH_GATE_URL holds the mark right before it commits, while the admin reinstalls.
 */
describe("shopify-sync: a command's refusal racing a reinstall", () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sim: ShopifySimulator;
  let apiGate: ExchangeGate;
  let reauthGate: Awaited<ReturnType<typeof startReauthGate>>;
  let sync: RunningShopifySync;
  let client: HubClient;
  const workspaces: string[] = [];

  beforeAll(async () => {
    infra = await realInfra('shopify-command-reauth-race-test');
    sim = await startShopifySimulator();
    reauthGate = await startReauthGate();
    // The shop.get query only: installs' webhook registrations and polls go straight through.
    apiGate = await startExchangeGate(sim.url, (method, path, body) => method === 'POST' && path.endsWith('/graphql.json') && body.includes('query Shop'));
    sync = await startShopifySync({
      ...serviceEnv('shopify-sync'), ...simEnv(sim), SHOPIFY_ADMIN_BASE_URL: apiGate.url, SHOPIFY_SYNC_GROUP: `ionflux-shopify-sync-${uid('q')}`,
      SHOPIFY_POLL_INTERVAL_MS: '3600000', SHOPIFY_FULL_SYNC_INTERVAL_MS: '0', IONFLUX_INBOX_TOPIC: `ionflux.inbox.${uid('shq')}`, SHOPIFY_TEST_REAUTH_GATE_URL: reauthGate.url,
    });
    client = await createHubClient({ brokers: env.brokers, registryUrl: env.registryUrl });
  }, 180_000);

  afterAll(async () => {
    await client?.close();
    await sync?.stop();
    await forgetConnections({ vault, bus: infra?.bus, vendor: 'shopify', connectionsTopic: CONNECTIONS_TOPIC }, workspaces);
    await Promise.all([apiGate?.close(), reauthGate?.close(), sim?.close()]);
    await infra?.close();
  });

  it("the token refused even once refreshed, the admin reinstalling before the mark: the reinstall stands and the next command succeeds", async () => {
    const ws = uid('ws');
    workspaces.push(ws);
    const shop = sim.addShop();
    const install = async () => {
      const r = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}&grant=${await connectGrant('shopify', ws)}`);
      expect(r.status, r.body).toBe(200);
    };
    const shopGet = () => client.send({ workspace_id: ws, agent_id: 'agent-s', service: 'shopify', action: 'shop.get', params: {} }, { timeoutMs: 60_000 });
    await install();
    reauthGate.hold();
    apiGate.hold();
    const out = shopGet();
    await apiGate.reached(1); // the command's first call: Shopify will refuse its token
    sim.expireAccessTokens(shop.domain);
    apiGate.release();
    apiGate.hold();
    await apiGate.reached(1); // its second call, with the token refreshed for it: refused too
    sim.expireAccessTokens(shop.domain);
    apiGate.release();
    // The refusal is about to be marked; the admin reinstalls before the mark commits.
    await reauthGate.reached(ws);
    await install();
    const reinstalled = (await vault.get(secretPaths.workspace(ws, 'shopify')))!.value.access_token!;
    reauthGate.release();

    const refused = await out;
    expect(refused).toMatchObject({ status: 'failed', error: { code: 'vendor_unauthorized' } });
    const table = await openWorkspaceConnectors(infra);
    expect(table.get(wsConnectorKey(ws, 'shopify'))?.connection).toBe('connected');
    await table.close();
    let record: { status: string } | undefined;
    for (const r of await readAll(infra.bus, CONNECTIONS_TOPIC)) if (r.key?.toString() === ws) record = r.value ? JSON.parse(r.value.toString()) : undefined;
    expect(record).toMatchObject({ status: 'active' });
    const next = await shopGet();
    expect(next, JSON.stringify(next.error)).toMatchObject({ status: 'succeeded', result: { shop: { myshopify_domain: shop.domain } } });
    expect((await vault.get(secretPaths.workspace(ws, 'shopify')))!.value.access_token).toBe(reinstalled);
  }, 120_000);
});

/**
 * RELIABILITY item 33: Shopify throttles one workspace's command (its shop's cost bucket is empty
 * and refills slowly). A command's wait for the bucket used to be slept inside its handler, which
 * held the worker's whole batch: a command another workspace sent meanwhile waited for it. Now the
 * wait goes to the command core, which pauses only that workspace's command topic.
 */
describe('shopify-sync: a shop throttling one workspace (item 33)', () => {
  /** The simulator's refill rate (Shopify: 50 points/s), so that shop.get (3 points) on an empty bucket waits 15 s. */
  const RESTORE_RATE = 0.2;
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sim: ShopifySimulator;
  let sync: RunningShopifySync;
  let client: HubClient;
  const workspaces: string[] = [];

  beforeAll(async () => {
    infra = await realInfra('shopify-throttled-workspace-test');
    sim = await startShopifySimulator({ restoreRate: RESTORE_RATE });
    sync = await startShopifySync({
      ...serviceEnv('shopify-sync'), ...simEnv(sim), SHOPIFY_SYNC_GROUP: `ionflux-shopify-sync-${uid('q')}`,
      SHOPIFY_POLL_INTERVAL_MS: '3600000', SHOPIFY_FULL_SYNC_INTERVAL_MS: '0', IONFLUX_INBOX_TOPIC: `ionflux.inbox.${uid('shq')}`,
      // A wait as long as the bucket asks is honoured.
      SHOPIFY_RETRY_MAX_WAIT_MS: '30000',
    });
    // As agents send: on each workspace's own command topic.
    client = await createHubClient({ brokers: env.brokers, registryUrl: env.registryUrl, commandTopics: 'workspace' });
  }, 180_000);

  afterAll(async () => {
    await client?.close();
    await sync?.stop();
    await forgetConnections({ vault, bus: infra?.bus, vendor: 'shopify', connectionsTopic: CONNECTIONS_TOPIC }, workspaces);
    await sim?.close();
    await infra?.close();
  });

  it("a command sent while another workspace's command waits for its shop's bucket completes first, on the same worker", async () => {
    const [a, b] = [uid('ws'), uid('ws')];
    workspaces.push(a, b);
    const [shopA, shopB] = [sim.addShop(), sim.addShop()];
    for (const [ws, shop] of [[a, shopA], [b, shopB]] as const) {
      const r = await browseInstall(`${sync.url}/shopify/install?shop=${shop.domain}&workspace=${ws}&grant=${await connectGrant('shopify', ws)}`);
      expect(r.status, r.body).toBe(200);
    }
    await infra.bus.ensureTopics([topics.workspaceCommand('shopify', a), topics.workspaceCommand('shopify', b)]);
    const order: string[] = [];
    const shopGet = (ws: string) => client.send({ workspace_id: ws, agent_id: 'agent-s', service: 'shopify', action: 'shop.get', params: {} }, { timeoutMs: 120_000 }).then((out) => (order.push(`${ws}:${out.status}`), out));
    // One command of each first, so the worker has found both topics before the test.
    for (const ws of [a, b]) expect(await shopGet(ws)).toMatchObject({ status: 'succeeded' });
    // The installs' first syncs are done (nothing asked of the shops for 3 s): only commands spend the buckets now.
    await expect.poll(() => Date.now() - Math.max(...sim.requests.map((r) => r.at)), { timeout: 60_000, interval: 500 }).toBeGreaterThan(3000);
    order.length = 0;
    const from = sim.requests.length;
    const shopCalls = (shop: string, throttled: boolean) => sim.requests.slice(from).filter((r) => r.shop === shop && r.root === 'shop' && r.throttled === throttled).length;

    // Another client of the app spent A's bucket: Shopify answers A's next query THROTTLED, 15 s to refill.
    shopA.bucket.available = 0;
    shopA.bucket.at = Date.now();
    const outA = shopGet(a);
    await expect.poll(() => shopCalls(shopA.domain, true), { timeout: 30_000 }).toBe(1);
    const outB = await Promise.all([shopGet(b), shopGet(b)]);
    expect(outB.map((o) => o.status)).toEqual(['succeeded', 'succeeded']);
    // B's were answered while A still waited: A's next call had not reached Shopify.
    expect(shopCalls(shopA.domain, false)).toBe(0);
    expect(await outA).toMatchObject({ status: 'succeeded', attempts: 2, result: { shop: { myshopify_domain: shopA.domain } } });
    expect(shopCalls(shopA.domain, false)).toBe(1);
    expect(order).toEqual([`${b}:succeeded`, `${b}:succeeded`, `${a}:succeeded`]);
  }, 180_000);
});

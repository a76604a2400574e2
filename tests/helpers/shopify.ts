import { z } from 'zod';
import type { Bus } from '../../shared/bus/types.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { EventCodec } from '../../shared/events/codec.ts';
import { buildEvent, PayloadSchemas } from '../../shared/events/platform-event.ts';
import { EVENT_HEADERS } from '../../shared/events/publisher.ts';
import type { ShopifySimulator } from '../simulators/shopify/index.ts';
import { freePort } from './ingester.ts';
import { cookiesOf, testStateDir, uid } from './infra.ts';
import { spawnService, type RunningService } from './service.ts';

export interface RunningShopifySync extends RunningService {
  url: string;
}

/** services/shopify-sync/main.ts as its own process, the way `make up` runs it. */
export async function startShopifySync(env: Record<string, string> = {}): Promise<RunningShopifySync> {
  const port = Number(env.SHOPIFY_SYNC_PORT ?? (await freePort()));
  const fullEnv = { ...process.env, VAULT_TOKEN: process.env.VAULT_TOKEN ?? 'ionflux-dev-root', SHOPIFY_SYNC_INSTANCE_ID: uid('sh'), IONFLUX_STATE_DIR: testStateDir(), OUTBOUND_ALLOWLIST: '127.0.0.1', LOG_LEVEL: 'info', ...env, SHOPIFY_SYNC_PORT: String(port) };
  const url = `http://127.0.0.1:${port}`;
  return { url, ...(await spawnService({ name: 'shopify-sync', env: fullEnv, readyLine: 'shopify sync running', readyUrl: `${url}/readyz`, keepOutputOnRestart: true })) };
}

/** Environment that points shopify-sync at a simulator (SHOPIFY_ADMIN_BASE_URL). */
export function simEnv(sim: ShopifySimulator): Record<string, string> {
  return { SHOPIFY_API_KEY: sim.apiKey, SHOPIFY_API_SECRET: sim.apiSecret, SHOPIFY_ADMIN_BASE_URL: sim.url };
}

/** A browser's User-Agent: the SDK refuses OAuth callbacks from clients that look like bots (node's fetch does). */
export const BROWSER = { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36' };

/**
 * What a browser does with an install link: follow the hub's 302 to the shop's authorize page
 * (the simulator approves at once), then Shopify's 302 back to the callback with the cookies the
 * hub set. `tamper` may rewrite the callback URL before it is visited; `otherBrowser` comes back
 * without the cookies (someone else's browser finishing it).
 */
export async function browseInstall(installUrl: string, o: { tamper?: (callback: URL) => void; otherBrowser?: boolean } = {}): Promise<{ status: number; body: string; authorize: URL; callback: URL }> {
  const first = await fetch(installUrl, { redirect: 'manual', headers: BROWSER });
  if (first.status !== 302) throw new Error(`install answered ${first.status}: ${await first.text()}`);
  const authorize = new URL(first.headers.get('location')!);
  const consent = await fetch(authorize, { redirect: 'manual', headers: BROWSER });
  if (consent.status !== 302) throw new Error(`authorize answered ${consent.status}: ${await consent.text()}`);
  const callback = new URL(consent.headers.get('location')!);
  o.tamper?.(callback);
  const res = await fetch(callback, { redirect: 'manual', headers: { ...BROWSER, ...(o.otherBrowser ? {} : cookiesOf(first)) } });
  return { status: res.status, body: await res.text(), authorize, callback };
}

const anyPayload = new PayloadSchemas().register('shopify.*', z.unknown());

/**
 * The record the ingester writes to ionflux.internal.shopify for a lifecycle or compliance webhook
 * (the same bytes as the event it publishes): for topics its `internal` set does not copy yet.
 */
export async function publishInternal(bus: Bus, codec: EventCodec, ws: string, eventType: string, body: unknown): Promise<void> {
  const event = buildEvent(anyPayload, { eventType, workspaceId: ws, source: 'webhook-ingester', payload: body, idempotencyKey: uid('wh'), correlationId: null, causationId: null });
  await bus.publish({ topic: topics.internal('shopify'), key: ws, value: await codec.encode(event), headers: { [EVENT_HEADERS.eventId]: event.event_id, [EVENT_HEADERS.eventType]: event.event_type, [EVENT_HEADERS.workspace]: ws } });
}

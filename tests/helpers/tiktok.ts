import type { Bus } from '../../shared/bus/types.ts';
import type { KafkaTable } from '../../shared/bus/table/table.ts';
import { decisionRecords } from '../../shared/commands/approvals.ts';
import { approvalSigningKey } from '../../shared/commands/release.ts';
import type { Approval } from '../../shared/commands/state.ts';
import type { EventCodec } from '../../shared/events/codec.ts';
import { createVaultSecretStore } from '../../shared/secrets/vault-store.ts';
import type { TikTokSimulator } from '../simulators/tiktok/index.ts';
import { freePort } from './ingester.ts';
import { cookiesOf, infraEnv, testStateDir, uid } from './infra.ts';
import { spawnService, type RunningService } from './service.ts';

export interface RunningTikTokSync extends RunningService {
  url: string;
}

/** services/tiktok-sync/main.ts as its own process, the way `make up` runs it. */
export async function startTikTokSync(env: Record<string, string> = {}): Promise<RunningTikTokSync> {
  const port = Number(env.TIKTOK_SYNC_PORT ?? (await freePort()));
  const fullEnv = { ...process.env, VAULT_TOKEN: process.env.VAULT_TOKEN ?? 'ionflux-dev-root', TIKTOK_SYNC_INSTANCE_ID: uid('tt'), IONFLUX_STATE_DIR: testStateDir(), OUTBOUND_ALLOWLIST: '127.0.0.1', LOG_LEVEL: 'info', ...env, TIKTOK_SYNC_PORT: String(port) };
  const url = `http://127.0.0.1:${port}`;
  return { url, ...(await spawnService({ name: 'tiktok-sync', env: fullEnv, readyLine: 'tiktok sync running', readyUrl: `${url}/readyz` })) };
}

/** Environment that points tiktok-sync at a simulator. */
export function simEnv(sim: TikTokSimulator): Record<string, string> {
  return { TIKTOK_CLIENT_KEY: sim.clientKey, TIKTOK_CLIENT_SECRET: sim.clientSecret, TIKTOK_API_BASE_URL: sim.url, TIKTOK_AUTHORIZE_URL: sim.authorizeUrl };
}

/**
 * What a browser does with the connect link: follow the hub's 302 to TikTok's authorize page (the
 * simulator signs in as `openId` and consents), then follow TikTok's 302 back to the callback with
 * the cookies the hub set. `tamper` may rewrite the authorize URL before it is visited;
 * `otherBrowser` comes back to the callback without them (someone else's browser finishing it).
 */
export async function browseConnect(connectUrl: string, sim: TikTokSimulator, openId: string, o: { scopes?: string[]; tamper?: (authorize: URL) => void; otherBrowser?: boolean } = {}): Promise<{ status: number; body: string; authorize: URL }> {
  const first = await fetch(connectUrl, { redirect: 'manual' });
  if (first.status !== 302) throw new Error(`connect answered ${first.status}: ${await first.text()}`);
  const authorize = new URL(first.headers.get('location')!);
  o.tamper?.(authorize);
  sim.consent(openId, o.scopes ? { scopes: o.scopes } : {});
  const consent = await fetch(authorize, { redirect: 'manual' });
  if (consent.status !== 302) throw new Error(`authorize answered ${consent.status}: ${await consent.text()}`);
  const callback = await fetch(consent.headers.get('location')!, { redirect: 'manual', headers: o.otherBrowser ? {} : cookiesOf(first) });
  return { status: callback.status, body: await callback.text(), authorize };
}

/** What `ionflux approvals approve` does: the decision and the kept command, signed with the admins' key. */
export async function approveAsAdmin(deps: { bus: Bus; codec: EventCodec; approvals: KafkaTable<Approval> }, approvalId: string): Promise<void> {
  const e = infraEnv();
  const signingKey = await approvalSigningKey(createVaultSecretStore({ addr: e.vaultAddr, token: e.vaultToken, mount: 'secret' }));
  const { records } = await decisionRecords({ codec: deps.codec, approvals: deps.approvals, signingKey }, approvalId, 'approved', 'test-admin');
  await deps.bus.publishAtomic(records);
}

import type { Bus } from '../../shared/bus/types.ts';
import type { KafkaTable } from '../../shared/bus/table/table.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { IncomingRecord, Subscription } from '../../shared/bus/types.ts';
import { auditRecord } from '../../shared/commands/audit.ts';
import { wsConnectorKey, type WorkspaceConnector } from '../../shared/commands/state.ts';
import type { PlatformEvent } from '../../shared/events/platform-event.ts';
import { linkKey, type LinkTable } from '../../shared/links.ts';
import type { Runtime } from '../../shared/runtime.ts';
import type { SecretStore } from '../../shared/secrets/index.ts';
import { parseJsonKeepingInt64 } from './api/json.ts';
import { SOURCE } from './events.ts';
import { CONNECTIONS_TOPIC, type Connection } from './state/connections.ts';
import { webhookKey, type LedgerEntry, type WebhookStatus } from './state/publishes.ts';
import { readTokens, tokenPath } from './tokens/vault.ts';

export interface LifecycleDeps {
  rt: Runtime;
  /** For the publish ledger's single records. */
  stateBus: Bus;
  store: SecretStore;
  links: LinkTable;
  connections: KafkaTable<Connection>;
  workspaceConnectors: KafkaTable<WorkspaceConnector>;
  ledger: KafkaTable<LedgerEntry>;
  groupId: string;
}

type Webhook = { user_openid?: string; create_time?: number; content?: Record<string, unknown> | string };

/** The ingester publishes TikTok's body verbatim, where `content` is itself a JSON string. */
function contentOf(body: Webhook): Record<string, unknown> {
  if (typeof body.content !== 'string') return body.content ?? {};
  try {
    return parseJsonKeepingInt64(body.content) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/**
 * TikTok's lifecycle webhooks, copied by the ingester to `ionflux.internal.tiktok`:
 * - authorization.removed: the user revoked the app. Tokens are forgotten, the account unlinked,
 *   the connection record deleted, the workspace marked disconnected, and it is audited. Only if
 *   the workspace is still connected to that account (a later reconnect is left alone).
 * - post.publish.*: the final status of a post, written to the publish ledger where the
 *   `videos.publish` command polling that publish id picks it up.
 * Every step is idempotent, so a redelivered record does no harm.
 */
export function startLifecycle(d: LifecycleDeps): Promise<Subscription> {
  return d.rt.bus.subscribe({
    service: 'tiktok-sync',
    groupId: d.groupId,
    // A restarted instance takes over within seconds of a crashed one (the runner heartbeats while handlers run).
    sessionTimeoutMs: 10_000,
    subscriptions: [topics.internal('tiktok')],
    fromBeginning: true,
    handler: async (record: IncomingRecord) => {
      if (!record.value) return;
      const event = await d.rt.codec.decode(record.value);
      const body = JSON.parse(event.payload_json) as Webhook;
      if (event.event_type === 'tiktok.authorization.removed') return removed(d, event, body);
      if (event.event_type.startsWith('tiktok.post.')) return postStatus(d, event, body);
    },
  });
}

async function removed(d: LifecycleDeps, event: PlatformEvent, body: Webhook): Promise<void> {
  const ws = event.workspace_id;
  const openId = body.user_openid;
  const held = await readTokens(d.store, ws);
  const c = d.connections.get(ws);
  // Already forgotten (a redelivery or a replay): nothing left to do.
  if (!held && !c && (!openId || d.links.get(linkKey('tiktok', openId))?.workspaceId !== ws)) return;
  // A removal older than the tokens held (a replay, or a reconnect after it) must not end the new
  // grant. Older by when it happened at TikTok (create_time), not when it reached the hub: TikTok
  // retries a webhook for up to 72 h, so a removal can arrive after the user reconnected.
  // create_time has whole seconds: tokens issued within that second count as older (removed).
  const removedAt = typeof body.create_time === 'number' ? (body.create_time + 1) * 1000 - 1 : event.timestamp;
  const newer = (held?.issued_at ?? 0) > removedAt || (c?.issued_at ?? 0) > removedAt;
  if (!openId || (held && held.open_id !== openId) || (c && c.open_id !== openId) || newer) {
    d.rt.logger.info({ workspace: ws }, 'authorization.removed for an account or grant this workspace no longer uses; ignored');
    return;
  }
  await d.store.delete(tokenPath(ws));
  const wsKey = wsConnectorKey(ws, 'tiktok');
  const prev = d.workspaceConnectors.get(wsKey) ?? { settings: {} };
  const wsState: WorkspaceConnector = { ...prev, connection: 'disconnected', connection_detail: 'the user removed the authorization at TikTok', updated_at: new Date().toISOString() };
  const audit = await auditRecord(d.rt.codec, SOURCE, { kind: 'disconnect', workspace_id: ws, connector: 'tiktok', actor: 'tiktok:authorization.removed', outcome: 'disconnected', detail: `open_id ${openId}: tokens deleted, account unlinked` }, `removed:${event.event_id}`);
  await d.rt.bus.publishAtomic([
    d.links.record(linkKey('tiktok', openId), undefined),
    { topic: CONNECTIONS_TOPIC, key: ws, value: null },
    d.workspaceConnectors.record(wsKey, wsState),
    audit,
  ]);
  d.links.applyLocal(linkKey('tiktok', openId), undefined);
  d.connections.applyLocal(ws, undefined);
  d.workspaceConnectors.applyLocal(wsKey, wsState);
  d.rt.logger.info({ workspace: ws, open_id: openId }, 'tiktok authorization removed: tokens forgotten, account unlinked');
}

const FINAL: Record<string, WebhookStatus['status']> = {
  'tiktok.post.publish_completed': 'PUBLISH_COMPLETE',
  'tiktok.post.publicly_available': 'PUBLISH_COMPLETE',
  'tiktok.post.inbox_delivered': 'SEND_TO_USER_INBOX',
  'tiktok.post.publish_failed': 'FAILED',
};

async function postStatus(d: LifecycleDeps, event: PlatformEvent, body: Webhook): Promise<void> {
  const status = FINAL[event.event_type];
  const content = contentOf(body);
  const publishId = content.publish_id;
  if (!status || typeof publishId !== 'string') return;
  const key = webhookKey(publishId);
  const prev = d.ledger.get(key) as WebhookStatus | undefined;
  const postId = content.post_id;
  const postIds = [...new Set([...(prev?.post_ids ?? []), ...(postId !== undefined ? [String(postId)] : [])])];
  // A later "publicly available" adds the post id; nothing else overwrites a final status.
  if (prev && prev.post_ids.length === postIds.length) return;
  const next: WebhookStatus = { status: prev?.status ?? status, post_ids: postIds, ...(status === 'FAILED' ? { fail_reason: String(content.reason ?? 'unknown') } : {}), at: Date.now() };
  await d.stateBus.publish(d.ledger.record(key, next));
  d.ledger.applyLocal(key, next);
}

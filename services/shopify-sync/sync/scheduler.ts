import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { OwnedPartition } from '../../../shared/bus/types.ts';
import { describeError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { Connection } from '../state/connections.ts';
import { keys, type SyncState } from '../state/sync-state.ts';
import type { TokenAccess } from '../tokens/access.ts';
import { bulkGivenUp, runBulkSync, type BulkOptions } from './bulk.ts';
import { ENTITIES, type EntityName } from './entities.ts';
import { runPagedSync, type SyncDeps, type SyncSummary } from './run.ts';

export interface SchedulerOptions {
  sync: SyncDeps;
  bulk: BulkOptions;
  tokens: TokenAccess;
  state: KafkaTable<SyncState>;
  logger: Logger;
  pollIntervalMs: number;
  fullIntervalMs: number;
  refreshMarginMs: number;
  /** A scheduled run finished (the sync.completed event). */
  onCompleted(ws: string, shop: string, runId: string, trigger: 'schedule' | 'nightly', s: SyncSummary): Promise<void>;
}

interface Task {
  partition: number;
  known: Connection;
  pollTimer?: NodeJS.Timeout;
  refreshTimer?: NodeJS.Timeout;
  running?: Promise<void>;
  /** No usable token (needs reauthorization, disconnected): no polls until the connection is active again or a new install replaces the task. */
  paused?: boolean;
  abort: AbortController;
}

const MAX_TIMER = 2 ** 31 - 1;
const jitter = (ms: number) => Math.round(ms * (0.9 + Math.random() * 0.2));

/**
 * The scheduled work of the shops this instance owns (the partitions of
 * ionflux.state.shopify-connections it holds through bus.own): a token refresh before expiry, and
 * per poll interval, for each entity, the nightly full sync when one is due (Bulk Operations,
 * `full:<ws>:<entity>` records when it last completed) or else an incremental sync since the
 * entity's watermark (skipping the entities already seen at exactly the watermark). Runs are checkpointed under `full-<entity>` / `poll-<entity>`, so a new owner after a
 * crash or rebalance resumes them. A tombstoned connection (uninstall) stops everything at once.
 */
export function createScheduler(o: SchedulerOptions) {
  const tasks = new Map<string, Task>();

  function stop(ws: string): void {
    const t = tasks.get(ws);
    if (!t) return;
    clearTimeout(t.pollTimer);
    clearTimeout(t.refreshTimer);
    t.abort.abort(new Error('shop no longer owned here or uninstalled'));
    tasks.delete(ws);
  }

  function planRefresh(t: Task): void {
    clearTimeout(t.refreshTimer);
    if (t.known.status !== 'active' || !t.known.access_expires_at) return;
    const at = t.known.access_expires_at - o.refreshMarginMs;
    t.refreshTimer = setTimeout(() => {
      o.tokens.refreshIfDue(t.known.workspace_id).catch((e: unknown) => o.logger.warn({ workspace: t.known.workspace_id, error: describeError(e) }, 'scheduled token refresh failed'))
        .finally(() => { if (tasks.get(t.known.workspace_id) === t) planRefresh(t); });
    }, Math.min(MAX_TIMER, Math.max(1000, at - Date.now())));
    t.refreshTimer.unref();
  }

  function schedulePoll(t: Task, delayMs: number): void {
    if (o.pollIntervalMs <= 0 && o.fullIntervalMs <= 0) return;
    clearTimeout(t.pollTimer);
    t.pollTimer = setTimeout(() => void poll(t), delayMs);
    t.pollTimer.unref();
  }

  async function runEntity(t: Task, entity: EntityName): Promise<void> {
    const ws = t.known.workspace_id;
    const full = o.state.get(keys.full(ws, entity));
    const inFull = o.state.get(keys.run(ws, `full-${entity}`));
    o.logger.debug({ workspace: ws, entity, full: full ?? null, in_full: inFull ?? null }, 'scheduled sync of an entity');
    const fullDue = o.fullIntervalMs > 0 && (inFull !== undefined || !full || (full.kind === 'full' && Date.now() - full.at >= o.fullIntervalMs));
    if (fullDue) {
      try {
        const s = await runBulkSync(o.sync, o.bulk, { ws, runId: `full-${entity}`, entity }, t.abort.signal);
        o.logger.info({ workspace: ws, shop: t.known.shop, entity, count: s.count, duration_ms: s.duration_ms, resumed: s.resumed }, 'nightly full sync done');
        return await o.onCompleted(ws, t.known.shop, `full-${entity}`, 'nightly', s);
      } catch (e) {
        // Shopify's operation ended without a result: the next cycle starts another; the entity is polled meanwhile.
        if (!bulkGivenUp(e)) throw e;
        o.logger.warn({ workspace: ws, shop: t.known.shop, entity, error: describeError(e) }, 'nightly full sync failed; polling the entity until the next one');
      }
    }
    if (o.pollIntervalMs <= 0) return;
    const mark = o.state.get(keys.poll(ws, entity));
    const s = await runPagedSync(o.sync, { ws, runId: `poll-${entity}`, entity, ...(mark?.kind === 'poll' ? { since: mark.watermark, seenAtSince: mark.ids ?? [] } : {}) }, t.abort.signal);
    if (s.count > 0) await o.onCompleted(ws, t.known.shop, `poll-${entity}`, 'schedule', s);
  }

  async function poll(t: Task): Promise<void> {
    if (t.running || t.abort.signal.aborted) return;
    // Waiting for the admin (needs_reauthorization): no timer runs until the connection is active again (adopt).
    if (t.known.status !== 'active') return void (t.paused = true);
    t.running = (async () => {
      for (const entity of ENTITIES) {
        if (t.abort.signal.aborted) return void o.logger.info({ workspace: t.known.workspace_id, entity }, 'scheduled sync stopped');
        try {
          await runEntity(t, entity);
        } catch (e) {
          if (t.abort.signal.aborted) return void o.logger.info({ workspace: t.known.workspace_id, entity, error: describeError(e) }, 'scheduled sync stopped');
          const code = describeError(e).code;
          if (code === 'not_connected' || code === 'needs_reauthorization') {
            // Disconnected from the hub's side, or the grant is gone: nothing to poll until a reinstall (a new connection record).
            o.logger.info({ workspace: t.known.workspace_id, shop: t.known.shop, reason: code }, 'shopify polling paused until the connection is active again (reauthorized or reinstalled)');
            t.paused = true;
            return;
          }
          o.logger.warn({ workspace: t.known.workspace_id, shop: t.known.shop, entity, error: describeError(e) }, 'scheduled shopify sync failed; next try at the next poll');
        }
      }
    })().finally(() => {
      t.running = undefined;
      if (!t.abort.signal.aborted && !t.paused) schedulePoll(t, jitter(o.pollIntervalMs > 0 ? o.pollIntervalMs : o.fullIntervalMs));
    });
  }

  function adopt(partition: number, ws: string, c: Connection | undefined): void {
    if (!c) return stop(ws);
    const t = tasks.get(ws);
    if (t && t.known.shop === c.shop && t.known.installed_at === c.installed_at) {
      t.known = c;
      planRefresh(t);
      // Active again with the same install (re-authorized, a refresh that went through after all):
      // the polls that stopped while it could not be polled start again.
      if (c.status === 'active' && t.paused) {
        t.paused = false;
        schedulePoll(t, 0);
      }
      return;
    }
    if (t) stop(ws);
    const task: Task = { partition, known: c, abort: new AbortController() };
    tasks.set(ws, task);
    planRefresh(task);
    schedulePoll(task, 0);
  }

  return {
    onAcquired(p: OwnedPartition<Connection>): void {
      for (const [ws, c] of p.records) adopt(p.partition, ws, c);
    },
    onReleased(partition: number): void {
      for (const [ws, t] of tasks) if (t.partition === partition) stop(ws);
    },
    onChange(partition: number, ws: string, c: Connection | undefined): void {
      adopt(partition, ws, c);
    },
    stopAll(): void {
      for (const ws of [...tasks.keys()]) stop(ws);
    },
    get shops(): number {
      return tasks.size;
    },
  };
}

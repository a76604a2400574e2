import { randomUUID } from 'node:crypto';
import { describeError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/logger.ts';
import { pollVideos, type PollDeps } from '../sync/poller.ts';
import type { Connection } from '../state/connections.ts';
import type { OwnedPartition } from '../../../shared/bus/types.ts';
import { connectionRecord, refreshConnection, type RefreshDeps, type Unstored } from './refresher.ts';

export interface SupervisorOptions {
  refresh: RefreshDeps;
  poll: PollDeps | null;
  logger: Logger;
  marginMs: number;
  claimStaleMs: number;
  pollIntervalMs: number;
  /** Resolves once the seen-videos table has read a tombstone written now into `partition`. */
  barrier(owned: OwnedPartition<Connection>, key: string): Promise<void>;
}

interface Task {
  partition: number;
  known: Connection;
  refreshTimer?: NodeJS.Timeout;
  pollTimer?: NodeJS.Timeout;
  refreshing?: Promise<void>;
  polling?: Promise<void>;
  /** A poll found the access token refused: poll again once a refresh went through. */
  pollAfterRefresh?: boolean;
  retries: number;
  /** Tokens a refresh got that the secret store did not take yet: the next attempt stores them. */
  unstored?: Unstored;
  abort: AbortController;
}

const MAX_TIMER = 2 ** 31 - 1;

/**
 * The work of the connections this instance owns: each gets a refresh timer (at expiry minus the
 * margin, at once when a command reported the token refused) and a poll timer. Everything stops
 * when the partition is released. Records older than what is known (a command's copy that lost a
 * race with a refresh) are corrected, never adopted.
 */
export function createSupervisor(o: SupervisorOptions) {
  const tasks = new Map<string, Task>();
  const owned = new Map<number, OwnedPartition<Connection>>();
  // Partitions whose barrier passed: only their connections get work.
  const ready = new Set<number>();

  function stop(ws: string): void {
    const t = tasks.get(ws);
    if (!t) return;
    clearTimeout(t.refreshTimer);
    clearTimeout(t.pollTimer);
    t.abort.abort();
    tasks.delete(ws);
  }

  function plan(t: Task): void {
    clearTimeout(t.refreshTimer);
    const c = t.known;
    if (c.status !== 'active') return;
    const now = Date.now();
    let at = c.access_expires_at - o.marginMs;
    if (c.refresh_requested && c.refresh_requested.at >= c.issued_at) at = now;
    const claim = c.refreshing;
    if (claim && claim.by !== o.refresh.instanceId && now - claim.since < o.claimStaleMs) at = Math.max(at, claim.since + o.claimStaleMs);
    t.refreshTimer = setTimeout(() => void refresh(t), Math.min(MAX_TIMER, Math.max(0, at - now)));
    t.refreshTimer.unref();
  }

  function refresh(t: Task): Promise<void> {
    t.refreshing ??= (async () => {
      const p = owned.get(t.partition);
      if (!p || t.abort.signal.aborted) return;
      try {
        const r = await refreshConnection(o.refresh, p.writer, t.known, t.unstored);
        t.unstored = 'retry' in r ? r.unstored : undefined;
        if ('next' in r) {
          // A newer generation read meanwhile (a reconnect's record) stays: ours is put back behind it.
          if (r.next.issued_at >= t.known.issued_at) t.known = r.next;
          else void p.writer.send([connectionRecord(t.known)]).catch(() => undefined);
          t.retries = 0;
        } else if ('gone' in r) return stop(t.known.workspace_id);
        else t.retries++;
      } catch (e) {
        t.retries++;
        o.logger.warn({ workspace: t.known.workspace_id, error: describeError(e) }, 'token refresh did not complete');
      }
    })().finally(() => {
      t.refreshing = undefined;
      if (t.abort.signal.aborted || tasks.get(t.known.workspace_id) !== t) return;
      if (t.retries > 0) {
        clearTimeout(t.refreshTimer);
        t.refreshTimer = setTimeout(() => void refresh(t), Math.min(300_000, 5000 * 2 ** Math.min(t.retries - 1, 6)));
        t.refreshTimer.unref();
        return;
      }
      plan(t);
      if (t.pollAfterRefresh && t.known.status === 'active') {
        t.pollAfterRefresh = false;
        schedulePoll(t, 0);
      }
    });
    return t.refreshing;
  }

  function schedulePoll(t: Task, delayMs: number): void {
    if (!o.poll || o.pollIntervalMs <= 0) return;
    clearTimeout(t.pollTimer);
    t.pollTimer = setTimeout(() => void poll(t), delayMs);
    t.pollTimer.unref();
  }

  async function poll(t: Task): Promise<void> {
    const p = owned.get(t.partition);
    if (!p || !o.poll || t.abort.signal.aborted || t.polling) return;
    let next = jitter(o.pollIntervalMs);
    t.polling = (async () => {
      if (t.known.status !== 'active') return;
      try {
        const r = await pollVideos(o.poll!, p.writer, t.partition, t.known, t.abort.signal);
        if (!r.ok && r.reason === 'token_invalid') {
          // The owner is the refresher, on its own schedule: at once unless it is backing off after
          // failed refreshes or another owner's claim is still live (plan() waits for it); the
          // next poll follows the refresh. Refreshing from here every second would hammer the token
          // endpoint (and the secret store) while TikTok is failing, and race the previous owner.
          t.known = { ...t.known, refresh_requested: { at: Date.now(), by: 'poller' } };
          t.pollAfterRefresh = true;
          if (!t.refreshing && t.retries === 0) plan(t);
        } else if (!r.ok && r.reason === 'not_connected') {
          // Disconnected (tokens deleted): the refresher sees it and forgets the connection.
          await refresh(t);
        }
      } catch (e) {
        if (!t.abort.signal.aborted) o.logger.warn({ workspace: t.known.workspace_id, error: describeError(e) }, 'video poll failed; next poll as scheduled');
      }
    })().finally(() => {
      t.polling = undefined;
      if (!t.abort.signal.aborted) schedulePoll(t, next);
    });
  }

  function adopt(partition: number, ws: string, c: Connection | undefined): void {
    if (!c) return stop(ws);
    const t = tasks.get(ws);
    if (!t) {
      const task: Task = { partition, known: c, retries: 0, abort: new AbortController() };
      tasks.set(ws, task);
      plan(task);
      schedulePoll(task, 0);
      return;
    }
    if (c.issued_at < t.known.issued_at) {
      // A stale copy (a command's refresh request that lost the race with our refresh): put the truth back.
      void owned.get(partition)?.writer.send([connectionRecord(t.known)]).catch(() => undefined);
      return;
    }
    const sameGeneration = c.issued_at === t.known.issued_at;
    const merged: Connection = sameGeneration && t.known.refreshing && !c.refreshing && t.refreshing ? { ...c, refreshing: t.known.refreshing } : c;
    t.known = merged;
    if (t.refreshing) return;
    // Backing off after a failed refresh: the echo of its own claim, or a command's request for
    // the same generation, must not cut the wait short. A new generation starts afresh.
    if (sameGeneration && t.retries > 0 && merged.status === 'active') return;
    if (!sameGeneration) t.retries = 0;
    plan(t);
  }

  return {
    async onAcquired(p: OwnedPartition<Connection>): Promise<void> {
      owned.set(p.partition, p);
      // Everything the previous owner published for these accounts is read before polling them.
      while (o.poll && owned.get(p.partition) === p) {
        try {
          await o.barrier(p, `__barrier:${o.refresh.instanceId}:${randomUUID()}`);
          break;
        } catch (e) {
          if (p.writer.dead) return; // fenced: another instance has the partition now
          o.logger.warn({ partition: p.partition, error: describeError(e) }, 'reading the seen-videos table to the end failed; trying again');
          await new Promise((r) => setTimeout(r, 5000));
        }
      }
      if (owned.get(p.partition) !== p) return;
      ready.add(p.partition);
      for (const [ws, c] of p.records) adopt(p.partition, ws, c);
    },
    onReleased(partition: number): void {
      owned.delete(partition);
      ready.delete(partition);
      for (const [ws, t] of tasks) if (t.partition === partition) stop(ws);
    },
    onChange(partition: number, ws: string, c: Connection | undefined): void {
      if (ready.has(partition)) adopt(partition, ws, c);
    },
    /** For the owner's tests and metrics: connections with work scheduled here. */
    get connections(): number {
      return tasks.size;
    },
  };
}

const jitter = (ms: number) => Math.round(ms * (0.9 + Math.random() * 0.2));

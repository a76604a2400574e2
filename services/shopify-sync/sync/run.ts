import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { Bus, OutgoingRecord } from '../../../shared/bus/types.ts';
import { inboxRecord } from '../../../shared/ingest/inbox.ts';
import type { Logger } from '../../../shared/logger.ts';
import { QueryTooCostly, SINGLE_QUERY_MAX_COST, type AdminApi } from '../api/admin.ts';
import { keys, SYNC_STATE_TOPIC, type RunCheckpoint, type SyncState } from '../state/sync-state.ts';
import type { TokenAccess } from '../tokens/access.ts';
import { entitySpecs, sinceFilter, type EntityName, type EntitySpec, type Payload } from './entities.ts';
import { pollDelivery, versionTag } from './inbox.ts';

export interface SyncDeps {
  api: AdminApi;
  tokens: TokenAccess;
  /** A transactional bus of the sync's own: each page's inbox appends and its checkpoint land together. */
  bus: Bus;
  /** The ingest inbox (IONFLUX_INBOX_TOPIC). */
  inboxTopic: string;
  state: KafkaTable<SyncState>;
  logger: Logger;
  pageSize: number;
  onEntities?: (entity: string, n: number) => void;
  /** Called after every page with the run's checkpoint (progress events). */
  onProgress?: (ws: string, runId: string, c: RunCheckpoint) => Promise<void> | void;
}

export interface SyncRun {
  ws: string;
  /** Entity versions (versionTag) already appended at exactly `since` (a poll's watermark): not appended again. */
  seenAtSince?: string[];
  /** The command id, or `poll-<entity>` / `full-<entity>` for scheduled runs. */
  runId: string;
  entity: EntityName;
  /** ISO time: only entities updated at or after it; one after the poll watermark leaves the watermark (finishRun). */
  since?: string;
}

export interface SyncSummary {
  entity: EntityName;
  mode: 'pages' | 'bulk';
  count: number;
  pages: number;
  resumed: boolean;
  since: string | null;
  started_at: string;
  duration_ms: number;
}

const stateRecord = (key: string, v: SyncState | undefined): OutgoingRecord => ({ topic: SYNC_STATE_TOPIC, key, value: v === undefined ? null : Buffer.from(JSON.stringify(v)) });

/** Customer markers for customers/data_request and customers/redact (what the hub holds about them). */
function customerMarkers(ws: string, shop: string, payloads: Payload[]): [string, SyncState][] {
  return payloads.filter((p) => p.entity === 'customers').map((p) => [keys.customer(ws, p.orderingKey), { kind: 'customer', shop, updated_at: p.updatedAt, synced_at: Date.now() }]);
}

/** Appends one batch of entities with the run's new checkpoint, in one transaction. */
export async function commitBatch(d: SyncDeps, ws: string, shop: string, runId: string, payloads: Payload[], next: RunCheckpoint): Promise<void> {
  const now = new Date();
  const markers = customerMarkers(ws, shop, payloads);
  await d.bus.publishAtomic([
    ...payloads.map((p) => inboxRecord(pollDelivery(shop, p, now), d.inboxTopic)),
    ...markers.map(([k, v]) => stateRecord(k, v)),
    stateRecord(keys.run(ws, runId), next),
  ], { timeoutMs: 60_000 });
  for (const [k, v] of markers) d.state.applyLocal(k, v);
  d.state.applyLocal(keys.run(ws, runId), next);
  d.onEntities?.(payloads[0]?.entity ?? 'none', payloads.length);
}

/**
 * Whether a run since `since` read everything the poll has yet to read: no `since`, or one at or
 * before the watermark (with no watermark the poll reads everything, so only a run without `since`).
 */
export const coversWatermark = (since: string | undefined, watermark: string | undefined): boolean =>
  !since || (!!watermark && Date.parse(since) <= Date.parse(watermark));

/**
 * The run is over: its checkpoint goes; the entity's poll watermark moves to the newest version
 * seen if the run covered it (coversWatermark), else stays, so the poll still reads the changes
 * between the watermark and `since`.
 */
export async function finishRun(d: SyncDeps, ws: string, runId: string, entity: EntityName, c: RunCheckpoint, full: boolean): Promise<void> {
  const pollKey = keys.poll(ws, entity);
  const prev = d.state.get(pollKey);
  const prevMark = prev?.kind === 'poll' ? prev.watermark : '';
  const records = [stateRecord(keys.run(ws, runId), undefined)];
  const applied: [string, SyncState | undefined][] = [[keys.run(ws, runId), undefined]];
  if (c.max_updated_at && c.max_updated_at >= prevMark && coversWatermark(c.since, prevMark)) {
    const same = c.max_updated_at === prevMark && prev?.kind === 'poll' ? (prev.ids ?? []) : [];
    const v: SyncState = { kind: 'poll', watermark: c.max_updated_at, ids: [...new Set([...same, ...(c.newest_ids ?? [])])].slice(-1000), at: Date.now() };
    records.push(stateRecord(pollKey, v));
    applied.push([pollKey, v]);
  }
  if (full && !c.since) {
    const v: SyncState = { kind: 'full', at: Date.now() };
    records.push(stateRecord(keys.full(ws, entity), v));
    applied.push([keys.full(ws, entity), v]);
  }
  await d.bus.publishAtomic(records, { timeoutMs: 60_000 });
  for (const [k, v] of applied) d.state.applyLocal(k, v);
}

/** The run is given up: its checkpoint goes, nothing else moves (what it appended stays appended). */
export async function abandonRun(d: SyncDeps, ws: string, runId: string): Promise<void> {
  await d.bus.publishAtomic([stateRecord(keys.run(ws, runId), undefined)], { timeoutMs: 60_000 });
  d.state.applyLocal(keys.run(ws, runId), undefined);
}

/** The checkpoint's newest version and the entity versions (versionTag) seen at exactly it, after a batch. */
export function advance(c: RunCheckpoint, payloads: Payload[]): Pick<RunCheckpoint, 'max_updated_at' | 'newest_ids'> {
  let max = c.max_updated_at;
  let ids = new Set(c.newest_ids ?? []);
  for (const p of payloads) {
    if (!p.updatedAt) continue;
    if (!max || p.updatedAt > max) {
      max = p.updatedAt;
      ids = new Set();
    }
    if (p.updatedAt === max) ids.add(versionTag(p));
  }
  return max ? { max_updated_at: max, newest_ids: [...ids].slice(-1000) } : {};
}

/**
 * Entities a page of `spec` asks for: `pageSize`, or fewer when that many would cost more than
 * Shopify's single-query limit (2 for the connection, nodeCost for each entity).
 */
export const pageFirst = (spec: EntitySpec, pageSize: number) => Math.max(1, Math.min(pageSize, Math.floor((SINGLE_QUERY_MAX_COST - 2) / spec.nodeCost)));

type Connection = { edges: { cursor: string; node: Record<string, unknown> }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };

/**
 * The page after the checkpoint's cursor, of `first` entities at most. One Shopify refuses as too
 * costly (its costs are not the defaults nodeCost assumes) is asked for again, from the same
 * cursor, half as large; the size that fitted is returned for the pages after it.
 */
async function readPage(d: SyncDeps, r: SyncRun, c: RunCheckpoint, first: number, signal: AbortSignal): Promise<{ shop: string; conn: Connection; first: number }> {
  const spec = entitySpecs[r.entity];
  try {
    return await d.tokens.withToken(r.ws, async (shop, token) => {
      const { data } = await d.api.graphql<Record<string, Connection>>(shop, token, `${r.entity}.page`, spec.pageQuery, { first, after: c.cursor, query: sinceFilter(c.since) }, signal);
      return { shop, conn: data[spec.root]!, first };
    });
  } catch (e) {
    if (!(e instanceof QueryTooCostly) || first === 1) throw e;
    d.logger.warn({ workspace: r.ws, run: r.runId, entity: r.entity, first, error: e.message }, 'Shopify priced the page over its single-query limit: asking for half as many');
    return readPage(d, r, c, Math.floor(first / 2), signal);
  }
}

/**
 * A sync of one entity through cursor pagination (GraphQL `pageInfo`), oldest change first
 * (sortKey UPDATED_AT). Every page is appended to the ingest inbox together with the run's
 * checkpoint (cursor, count), so a run cut short by a crash resumes after the last page recorded;
 * a page appended twice (crash between append and a later page) is harmless, the inbox processor
 * publishes each entity version once. A command's run handed over to another worker (`handover`)
 * stops after a recorded page.
 */
export async function runPagedSync(d: SyncDeps, r: SyncRun, signal: AbortSignal, handover?: AbortSignal): Promise<SyncSummary> {
  const spec = entitySpecs[r.entity];
  const key = keys.run(r.ws, r.runId);
  const held = d.state.get(key);
  const resumed = held?.kind === 'run' && held.mode === 'pages' && held.entity === r.entity;
  let c: RunCheckpoint = resumed ? held : { kind: 'run', entity: r.entity, mode: 'pages', ...(r.since ? { since: r.since } : {}), cursor: null, count: 0, pages: 0, started_at: Date.now(), updated_at: Date.now() };
  if (resumed) d.logger.info({ workspace: r.ws, run: r.runId, entity: r.entity, pages: c.pages, count: c.count }, 'resuming shopify sync from its checkpoint');
  let first = pageFirst(spec, d.pageSize);
  for (;;) {
    signal.throwIfAborted();
    const page = await readPage(d, r, c, first, signal);
    first = page.first;
    const seen = new Set(r.seenAtSince ?? []);
    // Skipped: only the very versions appended at exactly the watermark (another change in that second is read in).
    const fresh = (p: Payload) => !(c.since && p.updatedAt === c.since && seen.has(versionTag(p)));
    const nodes = page.conn.edges.map((e) => spec.payloads(e.node).filter(fresh)).filter((ps) => ps.length > 0);
    const payloads = nodes.flat();
    c = { ...c, cursor: page.conn.pageInfo.endCursor ?? c.cursor, count: c.count + nodes.length, pages: c.pages + 1, ...advance(c, payloads), updated_at: Date.now() };
    await commitBatch(d, r.ws, page.shop, r.runId, payloads, c);
    await d.onProgress?.(r.ws, r.runId, c);
    if (!page.conn.pageInfo.hasNextPage) break;
    handover?.throwIfAborted(); // handed over (a command's run): the next owner goes on from this checkpoint
  }
  await finishRun(d, r.ws, r.runId, r.entity, c, true);
  return summary(r, c, resumed);
}

export function summary(r: SyncRun, c: RunCheckpoint, resumed: boolean): SyncSummary {
  return { entity: r.entity, mode: c.mode, count: c.count, pages: c.pages, resumed, since: c.since ?? null, started_at: new Date(c.started_at).toISOString(), duration_ms: Date.now() - c.started_at };
}


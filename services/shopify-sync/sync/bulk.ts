import { HubError } from '../../../shared/errors.ts';
import { outboundFetch } from '../../../shared/net/outbound.ts';
import { checkUserErrors } from '../api/admin.ts';
import { keys, type RunCheckpoint } from '../state/sync-state.ts';
import { assembleBulk, entitySpecs, sinceFilter, type Payload } from './entities.ts';
import { abandonRun, advance, commitBatch, finishRun, summary, type SyncDeps, type SyncRun, type SyncSummary } from './run.ts';

/**
 * Wakes a bulk run when Shopify's `bulk_operations/finish` webhook arrives (the ingester copies it
 * to ionflux.internal.shopify); without it the run still polls every `pollMs`.
 */
export class BulkFinishes {
  private readonly waiters = new Map<string, Set<() => void>>();

  /** Resolves when `id` is reported finished, or after `ms`. */
  wait(id: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const set = this.waiters.get(id) ?? new Set();
      this.waiters.set(id, set);
      const settle = (ok: boolean) => {
        clearTimeout(t);
        set.delete(done);
        if (!set.size) this.waiters.delete(id);
        if (ok) resolve();
        else reject(signal.reason);
      };
      const done = () => settle(true);
      const t = setTimeout(done, ms);
      set.add(done);
      signal.addEventListener('abort', () => settle(false), { once: true });
    });
  }

  finished(id: string): void {
    for (const w of [...(this.waiters.get(id) ?? [])]) w();
  }
}

export interface BulkOptions {
  finishes?: BulkFinishes;
  pollMs: number;
  timeoutMs: number;
  /** Entities appended per transaction. */
  batch?: number;
}

/** An operation that ended without a result: given up with its run's checkpoint, not resumed (runBulkSync). */
const ABANDONED = new Set(['bulk_operation_missing', 'bulk_operation_failed', 'bulk_result_unavailable']);
export const bulkGivenUp = (e: unknown): boolean => e instanceof HubError && !e.retryable && ABANDONED.has(e.code);

const RUN = `mutation BulkRun($query: String!) {
  bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message code } }
}`;
const STATUS = `query BulkStatus($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode createdAt objectCount url partialDataUrl } }
}`;

interface BulkOperation { id: string; status: string; errorCode?: string | null; createdAt?: string; objectCount?: string; url?: string | null }

/**
 * The checkpoint with its newest version capped at the operation's `createdAt`. The operation
 * reads the shop while it runs, so its file is no snapshot: a node read before it changed holds
 * the old version, while another changed later and read after is in at its new time. A
 * watermark past `createdAt` would skip the first change for good; at `createdAt` the next poll
 * reads everything changed since the operation began (what it did read again is one event: the
 * inbox publishes each version once). The entities seen at exactly the cap are not known then,
 * so none are skipped.
 */
export function capAtCreated(c: RunCheckpoint, createdAt: string | undefined): RunCheckpoint {
  if (!createdAt || !c.max_updated_at || Date.parse(c.max_updated_at) <= Date.parse(createdAt)) return c;
  return { ...c, max_updated_at: createdAt, newest_ids: [] };
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve, reject) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)), { once: true });
});

/**
 * A full (or since-a-time) sync of one entity through Bulk Operations: `bulkOperationRunQuery`,
 * then the operation polled by id until it finishes (woken early by the `bulk_operations/finish`
 * webhook when the ingester copies it to the worker), then its JSONL result read line by line as
 * it arrives, children assembled under their parents (assembleBulk says what is held), and
 * appended to the inbox in batches, each with the run's checkpoint (operation id, entities done). A restarted run skips what it already appended
 * and never starts a second operation. Handed over (`handover`: a command's partition going to
 * another worker; a scheduled run's `signal` when its shop is no longer owned here), it stops at a
 * safe point: while waiting for the operation (its id is recorded), while reading the file, or
 * after a recorded batch; the next owner goes on from the checkpoint. It never stops between
 * starting the operation and recording its id.
 */
export async function runBulkSync(d: SyncDeps, o: BulkOptions, r: SyncRun, signal: AbortSignal, handover?: AbortSignal): Promise<SyncSummary> {
  // Everything after the operation's id is recorded may stop at the handover.
  const stoppable = handover ? AbortSignal.any([signal, handover]) : signal;
  const spec = entitySpecs[r.entity];
  const key = keys.run(r.ws, r.runId);
  const held = d.state.get(key);
  const resumed = held?.kind === 'run' && held.mode === 'bulk' && held.entity === r.entity;
  let c: RunCheckpoint = resumed ? held : { kind: 'run', entity: r.entity, mode: 'bulk', ...(r.since ? { since: r.since } : {}), cursor: null, count: 0, pages: 0, started_at: Date.now(), updated_at: Date.now() };

  d.logger.debug({ workspace: r.ws, run: r.runId, entity: r.entity, resumed }, 'bulk sync starting');
  // An operation that ended without a result (failed, canceled, expired, unknown to Shopify, its
  // file gone) is given up with its checkpoint: resumed, it would fail the same way every time, and
  // the nightly sync's checkpoint holds up the entity's polling while it exists.
  const abandoned = async (e: unknown): Promise<never> => {
    if (bulkGivenUp(e)) await abandonRun(d, r.ws, r.runId);
    throw e;
  };
  stoppable.throwIfAborted(); // handed over before it began: the next owner starts it
  const op = await d.tokens.withToken(r.ws, async (shop, token) => {
    let id = c.bulk_id;
    if (!id) {
      const { data } = await d.api.graphql<{ bulkOperationRunQuery: { bulkOperation: BulkOperation | null; userErrors: { field?: string[]; message: string }[] } }>(shop, token, 'bulk.run', RUN, { query: spec.bulkQuery(sinceFilter(c.since)) }, signal);
      checkUserErrors(data.bulkOperationRunQuery);
      id = data.bulkOperationRunQuery.bulkOperation!.id;
      c = { ...c, bulk_id: id, updated_at: Date.now() };
      await commitBatch(d, r.ws, shop, r.runId, [], c);
      d.logger.debug({ workspace: r.ws, run: r.runId, bulk: id }, 'bulk operation started');
    }
    const deadline = Date.now() + o.timeoutMs;
    for (;;) {
      stoppable.throwIfAborted();
      const { data } = await d.api.graphql<{ node: BulkOperation | null }>(shop, token, 'bulk.status', STATUS, { id }, stoppable);
      const b = data.node;
      if (!b) throw new HubError('bulk_operation_missing', `Shopify does not know bulk operation ${id}`);
      if (b.status === 'COMPLETED') return { shop, op: b };
      if (['FAILED', 'CANCELED', 'EXPIRED'].includes(b.status)) throw new HubError('bulk_operation_failed', `Shopify's bulk operation ${id} ended ${b.status}${b.errorCode ? ` (${b.errorCode})` : ''}`);
      if (Date.now() > deadline) throw new HubError('bulk_operation_timeout', `bulk operation ${id} did not finish within ${o.timeoutMs} ms`, { retryable: true });
      await (o.finishes ? o.finishes.wait(id, o.pollMs, stoppable) : sleep(o.pollMs, stoppable));
    }
  }).catch(abandoned);

  // No result file: the query matched nothing.
  const result = op.op.url ? await openResult(op.op.url, stoppable).catch(abandoned) : null;
  const lines = result ? resultLines(result) : [];
  let skip = c.count;
  let batch: Payload[] = [];
  let nodes = 0;
  const flush = async () => {
    if (!nodes) return;
    c = { ...c, count: c.count + nodes, pages: c.pages + 1, ...advance(c, batch), updated_at: Date.now() };
    await commitBatch(d, r.ws, op.shop, r.runId, batch, c);
    await d.onProgress?.(r.ws, r.runId, c);
    batch = [];
    nodes = 0;
    // A safe point: what was appended is recorded, the next owner skips it.
    stoppable.throwIfAborted();
  };
  for await (const node of assembleBulk(spec, lines)) {
    if (skip > 0) {
      skip--;
      continue;
    }
    batch.push(...spec.payloads(node));
    nodes++;
    if (nodes >= (o.batch ?? 250)) await flush();
  }
  await flush();
  await finishRun(d, r.ws, r.runId, r.entity, capAtCreated(c, op.op.createdAt), true);
  return summary(r, c, resumed);
}

/** The JSONL result (a signed storage URL in production) through the outbound policy: its body, not yet read. */
async function openResult(url: string, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
  const res = await outboundFetch(url, { signal });
  if (!res.ok) throw new HubError('bulk_result_unavailable', `the bulk operation's result answered HTTP ${res.status}`, { retryable: res.status >= 500 });
  return res.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
}

/** The lines of a body as they arrive (UTF-8; the last one may end without a newline). */
export async function* resultLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let rest = '';
  for await (const chunk of body) {
    const text = rest + decoder.decode(chunk, { stream: true });
    const lines = text.split('\n');
    rest = lines.pop()!;
    yield* lines;
  }
  rest += decoder.decode();
  if (rest) yield rest;
}

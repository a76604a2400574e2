import { syncInput } from '../../../shared/connectors/catalog/shopify.ts';
import { handler } from '../../../shared/connectors/types.ts';
import { runBulkSync } from '../sync/bulk.ts';
import type { EntityName } from '../sync/entities.ts';
import { runPagedSync } from '../sync/run.ts';
import type { ActionDeps } from './deps.ts';

/**
 * `<entity>.sync`: a full sync (Bulk Operations unless `mode: pages`) or one since a time (cursor
 * pages). The command id names the run and its checkpoint, so a command redelivered after a crash
 * resumes the same run (the action is resumable). Entities go to the inbox; the outcome carries
 * counts and duration, and a `sync.completed` event is published with it.
 */
export const syncAction = (d: ActionDeps, entity: EntityName) =>
  handler(syncInput, async (ctx) => {
    const p = ctx.params;
    const mode = p.mode === 'auto' ? (p.since ? 'pages' : 'bulk') : p.mode;
    const run = { ws: ctx.workspaceId, runId: ctx.idempotencyKey, entity, ...(p.since ? { since: new Date(p.since).toISOString() } : {}) };
    const s = mode === 'bulk' ? await runBulkSync(d.sync, d.bulk, run, ctx.signal, ctx.handover) : await runPagedSync(d.sync, run, ctx.signal, ctx.handover);
    ctx.emit('sync', 'completed', { ...s, shop: d.connections.get(ctx.workspaceId)?.shop ?? '', run_id: ctx.idempotencyKey, trigger: 'command' });
    return s;
  });

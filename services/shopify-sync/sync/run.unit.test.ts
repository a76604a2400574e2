import { describe, expect, it } from 'vitest';
import type { RunCheckpoint } from '../state/sync-state.ts';
import { advance } from './run.ts';

const c = (over: Partial<RunCheckpoint> = {}): RunCheckpoint => ({ kind: 'run', entity: 'orders', mode: 'pages', cursor: null, count: 0, pages: 0, started_at: 0, updated_at: 0, ...over });
const p = (id: string, at: string | null) => ({ topic: 'orders/updated', entity: 'orders', orderingKey: id, updatedAt: at, body: {} });

describe('advance', () => {
  it('keeps the newest version and the entities seen at exactly it', () => {
    expect(advance(c(), [p('1', '2026-01-01T00:00:01Z'), p('2', '2026-01-01T00:00:02Z'), p('3', '2026-01-01T00:00:02Z')])).toEqual({ max_updated_at: '2026-01-01T00:00:02Z', newest_ids: ['2', '3'] });
    expect(advance(c({ max_updated_at: '2026-01-01T00:00:02Z', newest_ids: ['2'] }), [p('4', '2026-01-01T00:00:02Z')])).toEqual({ max_updated_at: '2026-01-01T00:00:02Z', newest_ids: ['2', '4'] });
    expect(advance(c({ max_updated_at: '2026-01-01T00:00:02Z', newest_ids: ['2'] }), [p('5', '2026-01-01T00:00:03Z')])).toEqual({ max_updated_at: '2026-01-01T00:00:03Z', newest_ids: ['5'] });
    expect(advance(c(), [p('6', null)])).toEqual({});
  });
});

import { describe, expect, it } from 'vitest';
import type { SyncState, RunCheckpoint } from '../state/sync-state.ts';
import { advance, coversWatermark, finishRun, type SyncDeps } from './run.ts';

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

describe('finishRun and the poll watermark', () => {
  const W0 = '2026-01-01T10:00:00Z';
  /** finishRun over a state table holding `mark` as orders' watermark (none if undefined); returns the watermark after. */
  async function finish(mark: string | undefined, run: Partial<RunCheckpoint>): Promise<string | undefined> {
    const state = new Map<string, SyncState>(mark ? [['poll:ws1:orders', { kind: 'poll', watermark: mark, ids: ['1'], at: 0 }]] : []);
    const d = {
      state: { get: (k: string) => state.get(k), applyLocal: (k: string, v: SyncState | undefined) => void (v ? state.set(k, v) : state.delete(k)) },
      bus: { publishAtomic: async () => {} },
    } as unknown as SyncDeps;
    await finishRun(d, 'ws1', 'cmd-1', 'orders', c({ max_updated_at: '2026-01-01T12:00:00Z', newest_ids: ['9'], ...run }), true);
    const after = state.get('poll:ws1:orders');
    return after?.kind === 'poll' ? after.watermark : undefined;
  }

  it('moves after a run without since, or since at or before the watermark', async () => {
    expect(await finish(W0, {})).toBe('2026-01-01T12:00:00Z');
    expect(await finish(W0, { since: '2026-01-01T09:00:00.000Z' })).toBe('2026-01-01T12:00:00Z');
    expect(await finish(W0, { since: '2026-01-01T10:00:00.000Z' })).toBe('2026-01-01T12:00:00Z');
    expect(await finish(undefined, {})).toBe('2026-01-01T12:00:00Z');
  });

  it('stays after a run since a time past the watermark, or when there is none', async () => {
    expect(await finish(W0, { since: '2026-01-01T11:00:00.000Z' })).toBe(W0);
    // Half a second past the watermark: compared as times, not as strings ('.' sorts before 'Z').
    expect(await finish(W0, { since: '2026-01-01T10:00:00.500Z' })).toBe(W0);
    expect(await finish(undefined, { since: '2026-01-01T09:00:00.000Z' })).toBeUndefined();
  });

  it('coversWatermark compares times; with no watermark only a run without since covers it', () => {
    expect(coversWatermark(undefined, undefined)).toBe(true);
    expect(coversWatermark(undefined, W0)).toBe(true);
    expect(coversWatermark(W0, W0)).toBe(true);
    expect(coversWatermark('2026-01-01T10:00:01.000Z', W0)).toBe(false);
    expect(coversWatermark(W0, undefined)).toBe(false);
    expect(coversWatermark(W0, '')).toBe(false);
  });
});

import { z } from 'zod';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { HubError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { LlmConfig } from './config.ts';

/**
 * `ionflux.state.llm-spend` (compacted): `<ws>:<yyyy-mm-dd>` and `<ws>:<yyyy-mm>` hold the
 * running spend (UTC), `<ws>:budget` the budget a command set. Workspace ids hold no `:`.
 */
export const spendEntrySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('spend'), usd: z.number().nonnegative(), calls: z.number().int().nonnegative(), updated_at: z.string() }),
  z.object({ kind: z.literal('budget'), day_usd: z.number().nonnegative().nullable(), month_usd: z.number().nonnegative().nullable(), updated_at: z.string() }),
]);
export type SpendEntry = z.infer<typeof spendEntrySchema>;

export const spendKeys = {
  day: (ws: string, now: number) => `${ws}:${new Date(now).toISOString().slice(0, 10)}`,
  month: (ws: string, now: number) => `${ws}:${new Date(now).toISOString().slice(0, 7)}`,
  budget: (ws: string) => `${ws}:budget`,
};

/** The part of KafkaTable this needs; a Map-backed one serves single-process use and unit tests. */
export interface SpendTable {
  get(key: string): SpendEntry | undefined;
  applyLocal(key: string, value: SpendEntry | undefined): void;
  record(key: string, value: SpendEntry | undefined): OutgoingRecord;
}

export interface Budget {
  day_usd: number | null;
  month_usd: number | null;
  source: 'command' | 'config' | 'default' | 'none';
}

/**
 * Spend and budgets per workspace. `add` updates memory at once and writes the new totals to
 * the table in the background (latest totals, so a lost write is repaired by the next one);
 * the authoritative record of every call is its usage event, written with the outcome.
 */
export function createSpendStore(o: { table: SpendTable; publish: (records: OutgoingRecord[]) => Promise<unknown>; config: LlmConfig; now: () => number; logger?: Logger; flushDelayMs?: number }) {
  const dirty = new Set<string>();
  let flushing: Promise<void> | null = null;
  let again = false;
  let timer: NodeJS.Timeout | null = null;

  // Written a moment later, not at once: the outcome's transaction then goes first instead of
  // queueing behind this one, and the totals of many calls share one write.
  function schedule(): void {
    timer ??= setTimeout(() => {
      timer = null;
      void flush();
    }, o.flushDelayMs ?? 100);
  }

  const usdOf = (key: string) => {
    const e = o.table.get(key);
    return e?.kind === 'spend' ? e.usd : 0;
  };

  function flush(): Promise<void> {
    if (flushing) {
      again = true;
      return flushing;
    }
    const keys = [...dirty];
    dirty.clear();
    if (keys.length === 0) return Promise.resolve();
    flushing = o
      .publish(keys.map((k) => o.table.record(k, o.table.get(k))))
      .then(
        () => undefined,
        (e: unknown) => {
          for (const k of keys) dirty.add(k);
          o.logger?.warn({ err: e, keys: keys.length }, 'llm spend not persisted yet; retrying');
          return new Promise<void>((r) => setTimeout(r, 1000).unref());
        },
      )
      .finally(() => {
        flushing = null;
        if (again || dirty.size) {
          again = false;
          schedule();
        }
      });
    return flushing;
  }

  function commandBudget(ws: string) {
    const e = o.table.get(spendKeys.budget(ws));
    return e?.kind === 'budget' ? e : undefined;
  }

  return {
    spent(ws: string): { day: number; month: number } {
      const now = o.now();
      return { day: usdOf(spendKeys.day(ws, now)), month: usdOf(spendKeys.month(ws, now)) };
    },

    /** Per field: the budget a command set, else LLM_WORKSPACE_BUDGETS, else the defaults. */
    budget(ws: string): Budget {
      const cmd = commandBudget(ws);
      const cfg = o.config.budgets.perWorkspace[ws];
      const pick = (c: number | null | undefined, w: number | null | undefined, d: number | null): [number | null, Budget['source']] =>
        c != null ? [c, 'command'] : w != null ? [w, 'config'] : d != null ? [d, 'default'] : [null, 'none'];
      const [day, s1] = pick(cmd?.day_usd, cfg?.day_usd, o.config.budgets.dayUsd);
      const [month, s2] = pick(cmd?.month_usd, cfg?.month_usd, o.config.budgets.monthUsd);
      const rank = ['none', 'default', 'config', 'command'] as const;
      return { day_usd: day, month_usd: month, source: rank[Math.max(rank.indexOf(s1), rank.indexOf(s2))]! };
    },

    add(ws: string, usd: number): void {
      if (usd <= 0) return;
      const now = o.now();
      for (const key of [spendKeys.day(ws, now), spendKeys.month(ws, now)]) {
        const prev = o.table.get(key);
        const calls = prev?.kind === 'spend' ? prev.calls : 0;
        o.table.applyLocal(key, { kind: 'spend', usd: Math.round((usdOf(key) + usd) * 1e8) / 1e8, calls: calls + 1, updated_at: new Date(now).toISOString() });
        dirty.add(key);
      }
      schedule();
    },

    /** Sets the fields given (null clears one back to config/default); written before it returns. */
    async setBudget(ws: string, b: { day_usd?: number | null; month_usd?: number | null }): Promise<void> {
      const prev = commandBudget(ws);
      const entry: SpendEntry = { kind: 'budget', day_usd: b.day_usd !== undefined ? b.day_usd : (prev?.day_usd ?? null), month_usd: b.month_usd !== undefined ? b.month_usd : (prev?.month_usd ?? null), updated_at: new Date(o.now()).toISOString() };
      await o.publish([o.table.record(spendKeys.budget(ws), entry)]);
      o.table.applyLocal(spendKeys.budget(ws), entry);
    },

    /** Writes what `add` has not written yet (at shutdown); gives up after a few failed tries. */
    async flush(): Promise<void> {
      if (timer) clearTimeout(timer);
      timer = null;
      for (let i = 0; i < 5 && (flushing || dirty.size); i++) await (flushing ?? flush());
    },
  };
}
export type SpendStore = ReturnType<typeof createSpendStore>;

/** Refuses before any vendor call when the workspace is at or over its daily or monthly budget. */
export function checkBudget(spend: SpendStore, ws: string): void {
  const b = spend.budget(ws);
  const s = spend.spent(ws);
  if (b.day_usd !== null && s.day >= b.day_usd) throw new HubError('budget_exceeded', `workspace ${ws} spent $${s.day.toFixed(6)} today (UTC) of its $${b.day_usd} daily LLM budget`);
  if (b.month_usd !== null && s.month >= b.month_usd) throw new HubError('budget_exceeded', `workspace ${ws} spent $${s.month.toFixed(6)} this month (UTC) of its $${b.month_usd} monthly LLM budget`);
}

/** A table kept in memory only: for a process without Kafka (listings, unit tests). */
export function memorySpendTable(): SpendTable {
  const m = new Map<string, SpendEntry>();
  return {
    get: (k) => m.get(k),
    applyLocal: (k, v) => void (v === undefined ? m.delete(k) : m.set(k, v)),
    record: (k, v) => ({ topic: 'memory', key: k, value: v === undefined ? null : JSON.stringify(v) }),
  };
}

import { z } from 'zod';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { HubError } from '../../../shared/errors.ts';
import { workspaceOfCommandTopic } from '../../../shared/bus/topics.ts';
import type { LlmConfig } from './config.ts';

/**
 * `ionflux.state.llm-spend` (compacted): `<ws>:<yyyy-mm-dd>:<shard>` and `<ws>:<yyyy-mm>:<shard>`
 * hold the running spend (UTC) a workspace's commands of one command partition made (the shard:
 * `s<p>` for partition p of the service's topic, `w<p>` for its own topic's), `<ws>:budget` the
 * budget a command set. A workspace's spend is the sum of its shards; a key without a shard
 * (`<ws>:<yyyy-mm-dd>`, as versions before shards wrote them) is one more. Workspace ids hold no `:`.
 */
export const spendEntrySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('spend'), usd: z.number().nonnegative(), calls: z.number().int().nonnegative(), updated_at: z.string() }),
  z.object({ kind: z.literal('budget'), day_usd: z.number().nonnegative().nullable(), month_usd: z.number().nonnegative().nullable(), updated_at: z.string() }),
]);
export type SpendEntry = z.infer<typeof spendEntrySchema>;

/** The command partition a call came from (ActionContext.source). */
export type SpendSource = { readonly topic: string; readonly partition: number };

const withShard = (key: string, shard: string | undefined) => (shard ? `${key}:${shard}` : key);

export const spendKeys = {
  day: (ws: string, now: number, shard?: string) => withShard(`${ws}:${new Date(now).toISOString().slice(0, 10)}`, shard),
  month: (ws: string, now: number, shard?: string) => withShard(`${ws}:${new Date(now).toISOString().slice(0, 7)}`, shard),
  budget: (ws: string) => `${ws}:budget`,
  /** The shard of a command partition; none without one (a process without Kafka). */
  shard: (source: SpendSource | undefined): string | undefined =>
    source?.topic === undefined ? undefined : `${workspaceOfCommandTopic(source.topic) === null ? 's' : 'w'}${source.partition}`,
};

/** `<ws>:<period>` and the shard (undefined for an old key without one) of a spend key; null for other keys. */
export function parseSpendKey(key: string): { total: string; period: string; shard: string | undefined } | null {
  const m = /^([^:]+):(\d{4}-\d{2}(?:-\d{2})?)(?::([^:]+))?$/.exec(key);
  return m ? { total: `${m[1]}:${m[2]}`, period: m[2]!, shard: m[3] } : null;
}

/** The part of KafkaTable this needs; a Map-backed one serves single-process use and unit tests. */
export interface SpendTable {
  get(key: string): SpendEntry | undefined;
  entries(): Iterable<[string, SpendEntry]>;
  applyLocal(key: string, value: SpendEntry | undefined): void;
  record(key: string, value: SpendEntry | undefined): OutgoingRecord;
}

export interface Budget {
  day_usd: number | null;
  month_usd: number | null;
  source: 'command' | 'config' | 'default' | 'none';
}

type SpendTotal = Extract<SpendEntry, { kind: 'spend' }>;

/** When many totals are staged, those staged this long ago and never read back are let go: their unit never landed. */
const STAGED_MAX_MS = 3600_000;

const roundUsd = (usd: number) => Math.round(usd * 1e8) / 1e8;

/**
 * Spend and budgets per workspace. `add` counts a billed call and gives the new day and month
 * totals of the workspace's shard for the command's partition as records, which the handler
 * publishes with the command's outcome (staged `evenOnFailure`), so a call's spend lands exactly
 * when its outcome does, failed or not.
 *
 * Each shard has one writer: the partition's owner, whose commands of one workspace run one at a
 * time and whose next owner reads this table to its end before working on it (the worker's
 * `resumeTables`). So a total read and written again never misses another writer's call. (One total
 * per workspace, read and written by the owners of its two command partitions, did: two
 * instances both read T and wrote T+a and T+b.) What the workspace spent is the sum of its shards,
 * found through `shardsOf`, an index of the spend keys of the current month fed by the table
 * (`changed`) and by this store's own writes.
 *
 * The table takes a total only from the topic: until it reads one back, this store answers from the
 * total it staged, so the partition's next command (run while the outcome is still on its way)
 * checks and counts on top of it. A total is absolute: publishing its unit again (a retried
 * publish) never counts the call twice. Totals carry `calls`, which only grows, to tell which of
 * the table's and the staged one is newer. The usage events remain the exact record of every call.
 */
export function createSpendStore(o: { table: SpendTable; publish: (records: OutgoingRecord[]) => Promise<unknown>; config: LlmConfig; now: () => number }) {
  const staged = new Map<string, { total: SpendTotal; at: number }>();
  let sweepAt = 1024;
  /** `<ws>:<period>` -> its spend keys (shards), for the current month's periods only. */
  const shardsOf = new Map<string, Set<string>>();
  let month = monthOf(o.now());

  /**
   * `<ws>:<shard>` -> that shard's spend keys of every period the table holds: what its writer
   * deletes once their period is over (see `add`).
   */
  const periodsOf = new Map<string, Set<string>>();

  function index(key: string): void {
    const k = parseSpendKey(key);
    if (!k) return;
    const writer = writerOf(k);
    if (writer !== undefined) {
      let keys = periodsOf.get(writer);
      if (!keys) periodsOf.set(writer, (keys = new Set()));
      keys.add(key);
    }
    if (k.period.slice(0, 7) < month) return;
    let keys = shardsOf.get(k.total);
    if (!keys) shardsOf.set(k.total, (keys = new Set()));
    keys.add(key);
  }

  /** A key the table no longer holds (a tombstone read back): forgotten. */
  function unindex(key: string): void {
    const k = parseSpendKey(key);
    if (!k) return;
    const writer = writerOf(k);
    if (writer !== undefined) periodsOf.get(writer)?.delete(key);
    shardsOf.get(k.total)?.delete(key);
  }

  /** A new month: the last month's totals are never asked for again. */
  function rollOver(now: number): void {
    const m = monthOf(now);
    if (m === month) return;
    month = m;
    for (const total of shardsOf.keys()) if (parseSpendKey(total)!.period.slice(0, 7) < month) shardsOf.delete(total);
  }

  for (const [key] of o.table.entries()) index(key);

  /** The newer of the table's total and the one staged here; a staged one the table caught up with is dropped. */
  function totalOf(key: string): SpendTotal | undefined {
    const read = o.table.get(key);
    const table = read?.kind === 'spend' ? read : undefined;
    const mine = staged.get(key);
    if (!mine) return table;
    if (!table || table.calls < mine.total.calls) return mine.total;
    staged.delete(key);
    return table;
  }

  /** Drops staged totals the table caught up with, and those whose unit never landed. */
  function sweep(now: number): void {
    for (const [key, s] of staged) if (now - s.at > STAGED_MAX_MS) staged.delete(key);
    for (const key of [...staged.keys()]) totalOf(key);
    sweepAt = Math.max(1024, staged.size * 2);
  }

  /** What a workspace spent in a period: the sum of its shards' totals. */
  function usdOf(total: string): number {
    const keys = shardsOf.get(total);
    if (!keys) return 0;
    let usd = 0;
    for (const key of keys) usd += totalOf(key)?.usd ?? 0;
    return roundUsd(usd);
  }

  function commandBudget(ws: string) {
    const e = o.table.get(spendKeys.budget(ws));
    return e?.kind === 'budget' ? e : undefined;
  }

  return {
    spent(ws: string): { day: number; month: number } {
      const now = o.now();
      rollOver(now);
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

    /**
     * Counts a call the provider billed on its command's partition (`source`): the new day and
     * month totals of that shard, as the records to publish with the command's outcome (none for a
     * call that cost nothing). Without a source (a process without Kafka) the totals have no shard.
     */
    add(ws: string, usd: number, source?: SpendSource): OutgoingRecord[] {
      if (usd <= 0) return [];
      const now = o.now();
      rollOver(now);
      if (staged.size >= sweepAt) sweep(now);
      const shard = spendKeys.shard(source);
      const current = [spendKeys.day(ws, now, shard), spendKeys.month(ws, now, shard)];
      const records = current.map((key) => {
        const prev = totalOf(key);
        const total: SpendTotal = { kind: 'spend', usd: roundUsd((prev?.usd ?? 0) + usd), calls: (prev?.calls ?? 0) + 1, updated_at: new Date(now).toISOString() };
        staged.set(key, { total, at: now });
        index(key);
        return o.table.record(key, total);
      });
      // This shard's totals of days and months that are over are never asked for again: its one
      // writer deletes them with the new ones (tombstones), so the compacted topic, and what every
      // instance reads at start, holds a workspace's current totals only. Sent again with each
      // call until the table reads them back (a few bytes; a unit that never landed loses nothing).
      if (shard !== undefined) {
        for (const key of periodsOf.get(`${ws}:${shard}`) ?? []) {
          if (current.includes(key)) continue;
          if (o.table.get(key) === undefined && !staged.has(key)) unindex(key);
          else records.push(o.table.record(key, undefined));
        }
      }
      return records;
    },

    /** A record the table read (its `onChange`): another shard of a workspace's spend is known, or one is gone. */
    changed(key: string, value: SpendEntry | undefined): void {
      if (value === undefined) unindex(key);
      else index(key);
    },

    /** Sets the fields given (null clears one back to config/default); written before it returns. */
    async setBudget(ws: string, b: { day_usd?: number | null; month_usd?: number | null }): Promise<void> {
      const prev = commandBudget(ws);
      const entry: SpendEntry = { kind: 'budget', day_usd: b.day_usd !== undefined ? b.day_usd : (prev?.day_usd ?? null), month_usd: b.month_usd !== undefined ? b.month_usd : (prev?.month_usd ?? null), updated_at: new Date(o.now()).toISOString() };
      await o.publish([o.table.record(spendKeys.budget(ws), entry)]);
      o.table.applyLocal(spendKeys.budget(ws), entry);
    },
  };
}
export type SpendStore = ReturnType<typeof createSpendStore>;

const monthOf = (now: number) => new Date(now).toISOString().slice(0, 7);

/** `<ws>:<shard>`: whose key it is (the shard's one writer); undefined for a key without a shard. */
const writerOf = (k: { total: string; shard: string | undefined }) => (k.shard === undefined ? undefined : `${k.total.slice(0, k.total.indexOf(':'))}:${k.shard}`);

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
    entries: () => m.entries(),
    applyLocal: (k, v) => void (v === undefined ? m.delete(k) : m.set(k, v)),
    record: (k, v) => ({ topic: 'memory', key: k, value: v === undefined ? null : JSON.stringify(v) }),
  };
}

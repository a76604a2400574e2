import { handler } from '../../../../shared/connectors/types.ts';
import type { LlmRuntime } from '../run.ts';
import { getBudgetInput, setBudgetInput } from '../../../../shared/connectors/catalog/llm-schemas.ts';

function view(rt: LlmRuntime, ws: string) {
  const b = rt.spend.budget(ws);
  const s = rt.spend.spent(ws);
  return { workspace_id: ws, day_usd: b.day_usd, month_usd: b.month_usd, source: b.source, spent_today_usd: s.day, spent_month_usd: s.month };
}

/** `llm.set_budget`: the workspace's USD budget per UTC day and month (null falls back to config). */
export const setBudget = (rt: LlmRuntime) =>
  handler(setBudgetInput, async (ctx) => {
    await rt.spend.setBudget(ctx.workspaceId, ctx.params);
    return view(rt, ctx.workspaceId);
  });

/** `llm.get_budget`: the budget in force and what was spent today and this month. */
export const getBudget = (rt: LlmRuntime) => handler(getBudgetInput, async (ctx) => view(rt, ctx.workspaceId));

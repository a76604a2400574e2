import { performance } from 'node:perf_hooks';
import type OpenAI from 'openai';
import type { z } from 'zod';
import type { Logger } from '../../../shared/logger.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import type { ActionContext } from '../../../shared/connectors/types.ts';
import { HubError } from '../../../shared/errors.ts';
import type { ArtifactStore } from './artifacts.ts';
import { checkBudget, type SpendStore } from './budget.ts';
import type { LlmConfig, ModelRoute, Task } from './config.ts';
import { createKeyResolver, type KeyResolver } from './keys.ts';
import { costOf, PRICES_TAKEN_AT, type Usage } from './prices.ts';
import { Cooldowns, createClientPool, resolveChain, walkChain, type ChainResult, type ClientPool } from './router.ts';
import type { UsageRecorded, usageSchema } from '../../../shared/connectors/catalog/llm-schemas.ts';

/** What a call observed, for metrics. */
export interface CallObservation {
  task: Task;
  provider: string;
  model: string;
  providerMs: number;
  overheadMs: number;
  costUsd: number;
  fallbacks: number;
}

/** What the LLM connector is built from; `main.ts` passes the Kafka-backed spend store. */
export interface LlmDeps {
  config: LlmConfig;
  store: SecretStore;
  spend: SpendStore;
  artifacts: ArtifactStore;
  logger?: Logger;
  now?: () => number;
  onCall?: (o: CallObservation) => void;
}

export interface LlmRuntime {
  config: LlmConfig;
  keys: KeyResolver;
  clients: ClientPool;
  cooldowns: Cooldowns;
  spend: SpendStore;
  artifacts: ArtifactStore;
  onCall?: (o: CallObservation) => void;
}

export function llmRuntime(d: LlmDeps): LlmRuntime {
  const now = d.now ?? Date.now;
  return {
    config: d.config,
    keys: createKeyResolver({ store: d.store, cacheMs: d.config.keyCacheMs, now }),
    clients: createClientPool(d.config.requestTimeoutMs),
    cooldowns: new Cooldowns(d.config.cooldownMs, now),
    spend: d.spend,
    artifacts: d.artifacts,
    onCall: d.onCall,
  };
}

type Routing = { model?: string; provider?: string; fallbacks?: string[] };

/** What the provider billed for a call, as its answer says. */
export interface Billed {
  usage: z.infer<typeof usageSchema>;
  /** Size and quality, for per-image prices. */
  image?: { size?: string; quality?: string };
}

/** How a task calls the provider and reads its answer. */
export interface TaskSteps<T> {
  /** The provider call, once per route the chain tries. */
  call: (client: OpenAI, route: ModelRoute, signal: AbortSignal) => Promise<T>;
  /** What the answer says was billed: read from the answer alone, and counted before anything else is done with it. */
  billed: (value: T, route: ModelRoute) => Billed;
  /** The response the outcome carries; it may store media, fetch or fail: the call is counted by then. */
  respond: (value: T, route: ModelRoute) => Promise<Record<string, unknown>> | Record<string, unknown>;
}

/**
 * The chain a workspace with a budget may use: only models with a price, since a call the table
 * cannot price would count $0 against the budget, however much the provider bills.
 */
export function pricedUnderBudget(rt: LlmRuntime, ws: string, chain: ModelRoute[]): ModelRoute[] {
  const b = rt.spend.budget(ws);
  if (b.day_usd === null && b.month_usd === null) return chain;
  const priced = chain.filter((r) => rt.config.prices[`${r.provider}/${r.model}`]);
  if (priced.length) return priced;
  throw new HubError('unpriced_model', `workspace ${ws} has an LLM budget, and ${chain.map((r) => `${r.provider}/${r.model}`).join(', ')} has no price to count against it: use a priced model, or give it one in LLM_PRICES`);
}

/**
 * One task end to end: budget check (before any vendor call), the fallback chain, cost and usage
 * event (both as soon as the answer is in, published with the outcome whatever it says), and a
 * response that fits in a Kafka record. `prepMs` is time spent before the chain (fetching audio),
 * reported apart from our overhead.
 */
export async function runTask<T>(rt: LlmRuntime, ctx: ActionContext<Routing>, task: Task, steps: TaskSteps<T>, o: { started?: number; prepMs?: number } = {}) {
  const started = o.started ?? performance.now();
  checkBudget(rt.spend, ctx.workspaceId);
  const chain = pricedUnderBudget(rt, ctx.workspaceId, resolveChain(rt.config, task, ctx.params));
  const r = await walkChain(rt, { task, chain, workspaceId: ctx.workspaceId, signal: ctx.signal, logger: ctx.logger, call: steps.call });
  const { usage, cost } = await charge(rt, ctx, task, r, steps.billed(r.value, r.route));
  const providerMs = r.attempts.reduce((n, a) => n + (a.ms ?? 0), 0);
  let providerResponse: Record<string, unknown>;
  let overheadMs: number;
  try {
    providerResponse = await fit(rt, await steps.respond(r.value, r.route), ctx.workspaceId);
  } finally {
    // Every billed call is in the calls and cost metrics, one whose response could not be made too.
    overheadMs = Math.max(0, performance.now() - started - providerMs - (o.prepMs ?? 0));
    rt.onCall?.({ task, provider: r.route.provider, model: r.route.model, providerMs, overheadMs, costUsd: cost.usd, fallbacks: r.attempts.length - 1 });
    ctx.logger.debug({ workspace_id: ctx.workspaceId, command_id: ctx.idempotencyKey, task, provider: r.route.provider, model: r.route.model, key_source: r.keySource, usage, cost_usd: cost.usd, attempts: r.attempts.length, provider_ms: round(providerMs), overhead_ms: round(overheadMs) }, 'llm call completed');
  }
  return {
    task,
    provider: r.route.provider,
    model: r.route.model,
    alias: r.route.alias,
    provider_response: providerResponse,
    usage,
    cost_usd: cost.usd,
    priced: cost.priced,
    prices_as_of: PRICES_TAKEN_AT,
    key_source: r.keySource,
    attempts: r.attempts,
    timing: { provider_ms: round(providerMs), overhead_ms: round(overheadMs), ...(o.prepMs !== undefined ? { fetch_ms: round(o.prepMs) } : {}) },
  };
}

/**
 * Counts a call the provider billed, before anything after it can fail (storing an image, the
 * output check, an outcome too large): its spend totals and its usage event go with the
 * command's outcome, failed or not, so the usage events add up to what the provider billed.
 */
function charge(rt: LlmRuntime, ctx: ActionContext<Routing>, task: Task, r: ChainResult<unknown>, billed: Billed) {
  const usage = clean(billed.usage);
  const cost = costOf(rt.config.prices[`${r.route.provider}/${r.route.model}`], usage, billed.image);
  for (const record of rt.spend.add(ctx.workspaceId, cost.usd, ctx.source)) ctx.stage(record, { evenOnFailure: true });
  const event: UsageRecorded = {
    command_id: ctx.idempotencyKey,
    agent_id: ctx.agentId,
    task,
    provider: r.route.provider,
    model: r.route.model,
    alias: r.route.alias,
    key_source: r.keySource,
    usage,
    cost_usd: cost.usd,
    priced: cost.priced,
    prices_as_of: PRICES_TAKEN_AT,
    recorded_at: new Date().toISOString(),
  };
  // Its id is the worker's for the handler's first emitted event (`<command id>:emit:0`, the chain
  // stops at the first answer); a billed call of a later run of the command (the worker retrying a
  // failure after it) has an id of its own (`<command id>:emit:<call>.0`): both are counted.
  ctx.emit('usage', 'recorded', event, { evenOnFailure: true });
  return { usage, cost };
}

/**
 * Records must stay under the broker's message size: a response bigger than
 * LLM_MAX_INLINE_BYTES (a large embedding batch, say) is stored and referenced instead.
 */
async function fit(rt: LlmRuntime, response: Record<string, unknown>, workspaceId: string): Promise<Record<string, unknown>> {
  const json = JSON.stringify(response);
  if (Buffer.byteLength(json) <= rt.config.maxInlineBytes) return response;
  const stored = await rt.artifacts.put(Buffer.from(json), 'application/json', workspaceId);
  const { embedding, embeddings, choices: _c, ...small } = response as Record<string, unknown> & { embedding?: unknown[]; embeddings?: unknown[] };
  return { stored, ...small, ...(embedding || embeddings ? { count: embeddings?.length ?? 1 } : {}) };
}

function clean(u: Usage): Usage {
  return Object.fromEntries(Object.entries(u).filter(([, v]) => typeof v === 'number' && Number.isFinite(v))) as Usage;
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

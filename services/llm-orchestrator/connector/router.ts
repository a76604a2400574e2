import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import OpenAI from 'openai';
import type { z } from 'zod';
import { HubError } from '../../../shared/errors.ts';
import { createLeanFetch } from '../../../shared/net/lean-fetch.ts';
import type { Logger } from '../../../shared/logger.ts';
import { VendorError } from '../../../shared/connectors/types.ts';
import { TASKS, type LlmConfig, type ModelRoute, type ProviderConfig, type Task } from './config.ts';
import type { KeyResolver, KeySource } from './keys.ts';
import { classifyProviderError, type ProviderFailure } from './provider-errors.ts';
import type { attemptSchema } from '../../../shared/connectors/catalog/llm-schemas.ts';

export type Attempt = z.infer<typeof attemptSchema>;

/** The model an agent named, then the chain to fall back on, keeping only models that serve the task. */
export function resolveChain(config: LlmConfig, task: Task, p: { model?: string; provider?: string; fallbacks?: string[] }): ModelRoute[] {
  const primary = resolveModel(config, p.model ?? config.defaults[task], p.provider);
  if (!primary.tasks.includes(task)) throw new HubError('unsupported_model', `${primary.alias} does not serve ${task} (it serves ${primary.tasks.join(', ')})`);
  const chain = [primary];
  for (const name of p.fallbacks ?? config.fallbacks[primary.alias] ?? []) {
    const next = resolveModel(config, name);
    if (next.tasks.includes(task) && !chain.some((r) => r.provider === next.provider && r.model === next.model)) chain.push(next);
  }
  return chain;
}

/** An alias, `<provider>/<model>`, or (with `provider`) that provider's own model name. */
export function resolveModel(config: LlmConfig, name: string, provider?: string): ModelRoute {
  if (provider) {
    if (!config.providers[provider]) throw new HubError('unknown_provider', `no provider ${provider} is configured (${Object.keys(config.providers).join(', ')})`);
    const alias = config.models[name];
    return alias?.provider === provider ? alias : { alias: `${provider}/${name}`, provider, model: name, tasks: TASKS };
  }
  const alias = config.models[name];
  if (alias) return alias;
  const i = name.indexOf('/');
  if (i > 0 && config.providers[name.slice(0, i)]) return { alias: name, provider: name.slice(0, i), model: name.slice(i + 1), tasks: TASKS };
  throw new HubError('unknown_model', `unknown model ${name}: use an alias (${Object.keys(config.models).slice(0, 8).join(', ')}, ...) or <provider>/<model>`);
}

/**
 * Providers that failed retryably are skipped for a while. 5xx, timeouts and refused
 * connections cool the whole provider down; a 429 only the key that got it (another
 * workspace's own key has its own rate limit). Retry-After lengthens the cooldown. A key out of
 * quota is skipped too (its next calls would fail the same way), marked so that skipping it is
 * not a reason to retry the command.
 */
export class Cooldowns {
  private readonly until = new Map<string, { at: number; reason: string; quotaExhausted: boolean }>();

  constructor(private readonly ms: number, private readonly now: () => number) {}

  mark(scope: string, reason: string, retryAfterMs = 0, quotaExhausted = false): void {
    this.until.set(scope, { at: this.now() + Math.max(this.ms, retryAfterMs), reason, quotaExhausted });
  }

  /** The longest-lasting active cooldown among `scopes`, if any. */
  active(...scopes: string[]): { remainingMs: number; reason: string; quotaExhausted: boolean } | null {
    let found: { remainingMs: number; reason: string; quotaExhausted: boolean } | null = null;
    for (const s of scopes) {
      const c = this.until.get(s);
      if (!c) continue;
      const remainingMs = c.at - this.now();
      if (remainingMs <= 0) this.until.delete(s);
      else if (!found || remainingMs > found.remainingMs) found = { remainingMs, reason: c.reason, quotaExhausted: c.quotaExhausted };
    }
    return found;
  }
}

/**
 * One openai client per (provider, key), reused so connections stay open. They all send through
 * one lean fetch (shared/net/lean-fetch.ts), which costs less CPU per call than Node's fetch.
 */
export function createClientPool(requestTimeoutMs: number) {
  const clients = new Map<string, OpenAI>();
  const fetch = createLeanFetch();
  return (provider: ProviderConfig, key: string): OpenAI => {
    const id = `${provider.id}\u0000${createHash('sha256').update(key).digest('base64url')}`;
    let c = clients.get(id);
    if (!c) {
      const foreign = provider.id !== 'openai';
      // maxRetries 0: the chain, its cooldowns and the worker's backoff decide what is retried.
      c = new OpenAI({ apiKey: key, baseURL: provider.baseURL, maxRetries: 0, timeout: requestTimeoutMs, logLevel: 'off', fetch, ...(foreign ? { organization: null, project: null } : {}) });
      if (clients.size >= 1000) clients.delete(clients.keys().next().value!);
      clients.set(id, c);
    }
    return c;
  };
}
export type ClientPool = ReturnType<typeof createClientPool>;

export interface ChainResult<T> {
  value: T;
  route: ModelRoute;
  keySource: KeySource;
  attempts: Attempt[];
  providerMs: number;
}

/**
 * Walks the chain: a provider without a key or cooling down is skipped with its reason; a
 * retryable failure cools it down and moves on, and so does a key out of quota; a non-retryable
 * one fails at once with the provider's reason. Throws a retryable VendorError (429/503 with the
 * shortest cooldown as Retry-After) when a provider that could be tried failed retryably, so the
 * worker backs off and tries again; else `provider_quota_exceeded` when a key was out of quota
 * (waiting would not help), and `provider_not_configured` when no provider had a key.
 */
export async function walkChain<T>(
  d: { config: LlmConfig; keys: KeyResolver; clients: ClientPool; cooldowns: Cooldowns },
  o: { task: Task; chain: ModelRoute[]; workspaceId: string; signal: AbortSignal; logger?: Logger; call: (client: OpenAI, route: ModelRoute, signal: AbortSignal) => Promise<T> },
): Promise<ChainResult<T>> {
  const attempts: Attempt[] = [];
  let waitMs: number | undefined;
  let only429 = true;
  let outOfQuota = false;
  for (const route of o.chain) {
    const provider = d.config.providers[route.provider]!;
    const key = await d.keys.resolve(provider, o.workspaceId);
    if (!key.ok) {
      attempts.push({ provider: route.provider, model: route.model, outcome: 'skipped', reason: key.reason });
      continue;
    }
    const keyScope = `${route.provider}:${key.source === 'workspace' ? `ws:${o.workspaceId}` : 'platform'}`;
    const cool = d.cooldowns.active(route.provider, keyScope);
    if (cool) {
      attempts.push({ provider: route.provider, model: route.model, outcome: 'skipped', reason: `cooling down for ${Math.ceil(cool.remainingMs)} ms after: ${cool.reason}`, key_source: key.source });
      if (cool.quotaExhausted) outOfQuota = true;
      else {
        waitMs = Math.min(waitMs ?? Infinity, cool.remainingMs);
        only429 &&= cool.reason.startsWith('429');
      }
      continue;
    }
    const started = performance.now();
    try {
      const value = await o.call(d.clients(provider, key.key), route, o.signal);
      const ms = performance.now() - started;
      attempts.push({ provider: route.provider, model: route.model, outcome: 'ok', ms: round(ms), key_source: key.source });
      return { value, route, keySource: key.source, attempts, providerMs: ms };
    } catch (e) {
      const f = classifyProviderError(e);
      if (!f) throw e;
      attempts.push({ provider: route.provider, model: route.model, outcome: 'failed', status: f.status || undefined, reason: f.reason, ms: round(performance.now() - started), key_source: key.source });
      o.logger?.warn({ err: e, workspace_id: o.workspaceId, task: o.task, provider: route.provider, model: route.model, status: f.status, retryable: f.retryable, key_source: key.source }, `llm provider failed: ${f.reason}`);
      if (f.aborted) throw new VendorError(504, `${o.task} timed out: ${summary(attempts)}`);
      if (f.quotaExhausted) {
        d.cooldowns.mark(keyScope, f.reason, f.retryAfterMs, true);
        outOfQuota = true;
        continue;
      }
      if (!f.retryable) throw nonRetryable(route, key.source, f);
      d.cooldowns.mark(f.status === 429 ? keyScope : route.provider, f.reason, f.retryAfterMs);
      waitMs = Math.min(waitMs ?? Infinity, Math.max(d.config.cooldownMs, f.retryAfterMs ?? 0));
      only429 &&= f.status === 429;
    }
  }
  if (waitMs === undefined && outOfQuota) throw new HubError('provider_quota_exceeded', `${o.task}: every provider key that could be tried is out of quota (credits or spend limit used up): ${summary(attempts)}`);
  if (waitMs === undefined) throw new HubError('provider_not_configured', `no provider is configured for ${o.task}: ${summary(attempts)}`);
  throw new VendorError(only429 ? 429 : 503, `every provider for ${o.task} failed: ${summary(attempts)}`, { retryAfterMs: Math.ceil(waitMs) });
}

/**
 * 400 (incl. content policy), 403, 404, 422 fail as the provider said. A rejected workspace key is a
 * VendorError 401 (the worker marks the workspace's connection as needing re-authorization); a
 * rejected platform key is the operator's problem and must not mark the workspace.
 */
function nonRetryable(route: ModelRoute, source: KeySource, f: ProviderFailure): Error {
  const message = `${route.provider} ${route.model} refused: ${f.reason}`;
  if (f.status === 401 && source !== 'workspace') return new HubError('provider_unauthorized', `${message} (the platform key for ${route.provider} was rejected)`);
  return new VendorError(f.status, message);
}

function summary(attempts: Attempt[]): string {
  return attempts.map((a) => `${a.provider} ${a.model}: ${a.outcome === 'skipped' ? `skipped (${a.reason})` : a.reason}`).join('; ');
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

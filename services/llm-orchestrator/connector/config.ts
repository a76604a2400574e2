import { z } from 'zod';
import { registerSecret } from '../../../shared/redact.ts';
import { DEFAULT_PRICES, priceSchema, type Price } from './prices.ts';
import { aliasName, TASKS, type Task } from '../../../shared/connectors/catalog/llm-schemas.ts';

export { aliasName, TASKS, type Task };


/** An OpenAI-compatible endpoint and where its platform key comes from. */
export interface ProviderConfig {
  id: string;
  baseURL: string;
  /** The platform key from the environment (OPENAI_API_KEY, ...), if set. */
  envKey?: string;
  envKeyName?: string;
  /** Local servers (Ollama, vLLM, llama.cpp) usually take any key. */
  keyRequired: boolean;
}

/** What an alias such as `gpt-4o` means: which provider serves it, under which model name, for which tasks. */
export interface ModelRoute {
  alias: string;
  provider: string;
  model: string;
  tasks: readonly Task[];
}

export interface LlmConfig {
  providers: Record<string, ProviderConfig>;
  models: Record<string, ModelRoute>;
  /** alias -> the aliases tried next, in order, when it fails retryably. */
  fallbacks: Record<string, string[]>;
  defaults: Record<Task, string>;
  /** `<provider>/<model>` -> price. */
  prices: Record<string, Price>;
  cooldownMs: number;
  requestTimeoutMs: number;
  keyCacheMs: number;
  media: { maxBytes: number; timeoutMs: number };
  maxInlineBytes: number;
  embeddingMaxInputs: number;
  budgets: { dayUsd: number | null; monthUsd: number | null; perWorkspace: Record<string, { day_usd?: number | null; month_usd?: number | null }> };
}

const CHAT = ['text_generation'] as const;
const CHAT_VISION = ['text_generation', 'image_understanding'] as const;

/** The one table of aliases: what agents name, and what each provider is asked for. */
const DEFAULT_MODELS: Record<string, Omit<ModelRoute, 'alias'>> = {
  'gpt-4o': { provider: 'openai', model: 'gpt-4o', tasks: CHAT_VISION },
  'gpt-4o-vision': { provider: 'openai', model: 'gpt-4o', tasks: ['image_understanding'] },
  'gpt-4o-mini': { provider: 'openai', model: 'gpt-4o-mini', tasks: CHAT_VISION },
  'gpt-3.5-turbo': { provider: 'openai', model: 'gpt-3.5-turbo', tasks: CHAT },
  'text-embedding-3-small': { provider: 'openai', model: 'text-embedding-3-small', tasks: ['embedding'] },
  'text-embedding-3-large': { provider: 'openai', model: 'text-embedding-3-large', tasks: ['embedding'] },
  'whisper-1': { provider: 'openai', model: 'whisper-1', tasks: ['speech_to_text'] },
  // Seed 001 names Whisper-large / Whisper v3; OpenAI serves them as whisper-1.
  'whisper-large': { provider: 'openai', model: 'whisper-1', tasks: ['speech_to_text'] },
  'whisper-v3': { provider: 'openai', model: 'whisper-1', tasks: ['speech_to_text'] },
  'dall-e-3': { provider: 'openai', model: 'dall-e-3', tasks: ['image_generation'] },
  'dall-e-2': { provider: 'openai', model: 'dall-e-2', tasks: ['image_generation'] },
  'gpt-image-1': { provider: 'openai', model: 'gpt-image-1', tasks: ['image_generation'] },
  'claude-3-haiku': { provider: 'anthropic', model: 'claude-3-haiku-20240307', tasks: CHAT_VISION },
  'claude-3-5-haiku': { provider: 'anthropic', model: 'claude-3-5-haiku-latest', tasks: CHAT },
  'claude-3-5-sonnet': { provider: 'anthropic', model: 'claude-3-5-sonnet-latest', tasks: CHAT_VISION },
  'deepseek-chat': { provider: 'deepseek', model: 'deepseek-chat', tasks: CHAT },
  // Seed 001's "ds-chat-b32" is DeepSeek's chat model.
  'ds-chat-b32': { provider: 'deepseek', model: 'deepseek-chat', tasks: CHAT },
  'deepseek-reasoner': { provider: 'deepseek', model: 'deepseek-reasoner', tasks: CHAT },
};

// Chains are filtered by task when walked: deepseek-chat serves no image_understanding, so a
// vision request on gpt-4o falls back to claude-3-haiku only. Embeddings have no default
// fallback: another model's vectors would not be comparable with the ones already stored.
const DEFAULT_FALLBACKS: Record<string, string[]> = {
  'gpt-4o': ['claude-3-haiku', 'deepseek-chat'],
  'gpt-4o-mini': ['claude-3-haiku', 'deepseek-chat'],
  'gpt-3.5-turbo': ['claude-3-haiku', 'deepseek-chat'],
  'claude-3-haiku': ['gpt-4o-mini', 'deepseek-chat'],
  'deepseek-chat': ['claude-3-haiku', 'gpt-4o-mini'],
};

const DEFAULT_TASK_MODELS: Record<Task, string> = {
  text_generation: 'gpt-4o',
  embedding: 'text-embedding-3-small',
  speech_to_text: 'whisper-1',
  image_understanding: 'gpt-4o',
  image_generation: 'dall-e-3',
};

const json = <S extends z.ZodType>(schema: S) =>
  z
    .string()
    .transform((s, ctx) => {
      try {
        return JSON.parse(s) as unknown;
      } catch {
        ctx.issues.push({ code: 'custom', message: 'not valid JSON', input: s });
        return z.NEVER;
      }
    })
    .pipe(schema);
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const ms = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const usd = z.coerce.number().nonnegative();

const providerId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, _ and -');
const task = z.enum(TASKS);
const extraModel = z.object({ model: z.string().min(1), tasks: z.array(task).min(1), price: priceSchema.optional() });
const extraProvider = z.object({
  base_url: z.url(),
  /** Name of the environment variable holding its platform key (the store's `platform/<id>` also works). */
  api_key_env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).optional(),
  key_required: z.boolean().default(false),
  models: z.record(aliasName, extraModel).default({}),
});
const budget = z.object({ day_usd: usd.nullable().optional(), month_usd: usd.nullable().optional() });

/** Environment variables of the LLM connector; services extend baseEnv with these. */
export const llmEnvShape = {
  OPENAI_API_KEY: z.string().optional(),
  OPENAI_BASE_URL: z.url().default('https://api.openai.com/v1'),
  ANTHROPIC_API_KEY: z.string().optional(),
  ANTHROPIC_BASE_URL: z.url().default('https://api.anthropic.com/v1/'),
  DEEPSEEK_API_KEY: z.string().optional(),
  DEEPSEEK_BASE_URL: z.url().default('https://api.deepseek.com'),
  /** {"ollama": {"base_url": "http://127.0.0.1:11434/v1", "models": {"llama3.1": {"model": "llama3.1:8b", "tasks": ["text_generation"]}}}} */
  LLM_EXTRA_PROVIDERS: json(z.record(providerId, extraProvider)).default({}),
  /** Extra or replaced aliases: {"my-alias": {"provider": "openai", "model": "gpt-4o-2024-08-06", "tasks": ["text_generation"]}} */
  LLM_MODELS: json(z.record(aliasName, z.object({ provider: providerId, model: z.string().min(1), tasks: z.array(task).min(1) }))).default({}),
  /** Replaces the chains of the aliases it names: {"gpt-4o": ["claude-3-haiku", "deepseek-chat"]} */
  LLM_FALLBACKS: json(z.record(aliasName, z.array(aliasName))).default({}),
  LLM_DEFAULT_MODELS: json(z.partialRecord(task, aliasName)).default({}),
  /** Price overrides keyed `<provider>/<model>`, same fields as the built-in table. */
  LLM_PRICES: json(z.record(z.string(), priceSchema)).default({}),
  LLM_COOLDOWN_MS: ms(5000),
  LLM_REQUEST_TIMEOUT_MS: ms(60_000),
  LLM_KEY_CACHE_MS: z.coerce.number().int().nonnegative().default(30_000),
  LLM_MEDIA_MAX_BYTES: ms(25 * 1024 * 1024),
  LLM_MEDIA_TIMEOUT_MS: ms(15_000),
  LLM_MAX_INLINE_BYTES: ms(512 * 1024),
  LLM_EMBEDDING_MAX_INPUTS: ms(256),
  LLM_BUDGET_USD_DAY: usd.optional(),
  LLM_BUDGET_USD_MONTH: usd.optional(),
  /** {"acme": {"day_usd": 5, "month_usd": 100}}; a budget set by `llm.set_budget` wins. */
  LLM_WORKSPACE_BUDGETS: json(z.record(z.string(), budget)).default({}),
  /** Generated images and oversized responses, served at <LLM_ARTIFACTS_BASE_URL>/artifacts/<sha256>.<ext>. */
  LLM_ARTIFACTS_DIR: z.string().default('.ionflux/llm-artifacts'),
  /** Default: the orchestrator's own ops address. */
  LLM_ARTIFACTS_BASE_URL: z.url().optional(),
  /** Signs artifact URLs (workspace + expiry); default: a random key kept in LLM_ARTIFACTS_DIR. Same value on every instance. */
  LLM_ARTIFACTS_SIGNING_KEY: z.string().min(32).optional(),
  LLM_ARTIFACTS_TTL_HOURS: z.coerce.number().positive().default(168),
};
export const llmEnvSchema = z.object(llmEnvShape);
export type LlmEnv = z.infer<typeof llmEnvSchema>;

/** The routing table, prices and limits, from the parsed environment. Registers every key it reads as a secret. */
export function buildLlmConfig(env: LlmEnv, rawEnv: NodeJS.ProcessEnv = process.env): LlmConfig {
  const builtin: [string, string, string | undefined, string][] = [
    ['openai', env.OPENAI_BASE_URL, env.OPENAI_API_KEY, 'OPENAI_API_KEY'],
    ['anthropic', env.ANTHROPIC_BASE_URL, env.ANTHROPIC_API_KEY, 'ANTHROPIC_API_KEY'],
    ['deepseek', env.DEEPSEEK_BASE_URL, env.DEEPSEEK_API_KEY, 'DEEPSEEK_API_KEY'],
  ];
  const providers: Record<string, ProviderConfig> = {};
  for (const [id, baseURL, envKey, envKeyName] of builtin) providers[id] = { id, baseURL, envKey, envKeyName, keyRequired: true };
  const models: Record<string, ModelRoute> = Object.fromEntries(Object.entries(DEFAULT_MODELS).map(([alias, r]) => [alias, { alias, ...r }]));
  const prices: Record<string, Price> = { ...DEFAULT_PRICES };
  for (const [id, p] of Object.entries(env.LLM_EXTRA_PROVIDERS)) {
    const envKey = p.api_key_env ? rawEnv[p.api_key_env] || undefined : undefined;
    providers[id] = { id, baseURL: p.base_url, envKey, envKeyName: p.api_key_env, keyRequired: p.key_required };
    for (const [alias, m] of Object.entries(p.models)) {
      models[alias] = { alias, provider: id, model: m.model, tasks: m.tasks };
      if (m.price) prices[`${id}/${m.model}`] = m.price;
    }
  }
  for (const [alias, m] of Object.entries(env.LLM_MODELS)) models[alias] = { alias, ...m };
  Object.assign(prices, env.LLM_PRICES);
  for (const p of Object.values(providers)) registerSecret(p.envKey);

  const problems: string[] = [];
  for (const m of Object.values(models)) if (!providers[m.provider]) problems.push(`model ${m.alias}: unknown provider ${m.provider}`);
  const fallbacks = { ...DEFAULT_FALLBACKS, ...env.LLM_FALLBACKS };
  for (const [alias, chain] of Object.entries(env.LLM_FALLBACKS)) {
    for (const next of [alias, ...chain]) if (!models[next] && !isProviderModel(next, providers)) problems.push(`LLM_FALLBACKS: unknown model ${next}`);
  }
  const defaults = { ...DEFAULT_TASK_MODELS, ...env.LLM_DEFAULT_MODELS };
  for (const [t, alias] of Object.entries(defaults)) if (!models[alias] && !isProviderModel(alias, providers)) problems.push(`LLM_DEFAULT_MODELS.${t}: unknown model ${alias}`);
  if (problems.length) throw new Error(`invalid LLM configuration:\n  ${problems.join('\n  ')}`);

  return {
    providers,
    models,
    fallbacks,
    defaults,
    prices,
    cooldownMs: env.LLM_COOLDOWN_MS,
    requestTimeoutMs: env.LLM_REQUEST_TIMEOUT_MS,
    keyCacheMs: env.LLM_KEY_CACHE_MS,
    media: { maxBytes: env.LLM_MEDIA_MAX_BYTES, timeoutMs: env.LLM_MEDIA_TIMEOUT_MS },
    maxInlineBytes: env.LLM_MAX_INLINE_BYTES,
    embeddingMaxInputs: env.LLM_EMBEDDING_MAX_INPUTS,
    budgets: { dayUsd: env.LLM_BUDGET_USD_DAY ?? null, monthUsd: env.LLM_BUDGET_USD_MONTH ?? null, perWorkspace: env.LLM_WORKSPACE_BUDGETS },
  };
}

/** `ollama/llama3.1:8b` names a provider and its own model name directly. */
function isProviderModel(name: string, providers: Record<string, ProviderConfig>): boolean {
  const i = name.indexOf('/');
  return i > 0 && !!providers[name.slice(0, i)];
}

import { z } from 'zod';

/** The model tasks of ionflux.cmd.llm. */
export const TASKS = ['text_generation', 'embedding', 'speech_to_text', 'image_understanding', 'image_generation'] as const;
export type Task = (typeof TASKS)[number];
/** A model alias or provider model name, as callers may name it. */
export const aliasName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/, 'letters, digits and . _ : / -');

/** Routing fields every task takes: an alias (or `provider/model`), and the chain to fall back on. */
const routing = {
  /** An alias from the model table (`gpt-4o`, `claude-3-haiku`, ...) or `<provider>/<model>`; default per task. */
  model: aliasName.optional(),
  /** Pins the provider: `model` is then that provider's own model name. Seed 001's request field. */
  provider: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/).optional(),
  /** Replaces the configured fallback chain; `[]` disables fallback. */
  fallbacks: z.array(aliasName).max(8).optional(),
};

const httpUrl = z.url({ protocol: /^https?$/ });
const imageRef = z.union([httpUrl, z.string().regex(/^data:image\/[a-z0-9.+-]+;base64,/, 'an http(s) URL or a data:image/...;base64 URL')]);

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const imagePart = z.object({ type: z.literal('image_url'), image_url: z.object({ url: imageRef, detail: z.enum(['auto', 'low', 'high']).optional() }) });
const toolCall = z.object({ id: z.string(), type: z.literal('function'), function: z.object({ name: z.string(), arguments: z.string() }) });

/** OpenAI chat messages: system/developer, user (text or text + image parts), assistant (text or tool calls), tool results. */
export const messageSchema = z.discriminatedUnion('role', [
  z.object({ role: z.literal('system'), content: z.string(), name: z.string().optional() }),
  z.object({ role: z.literal('developer'), content: z.string(), name: z.string().optional() }),
  z.object({ role: z.literal('user'), content: z.union([z.string(), z.array(z.union([textPart, imagePart])).min(1)]), name: z.string().optional() }),
  z.object({ role: z.literal('assistant'), content: z.string().nullable().optional(), name: z.string().optional(), tool_calls: z.array(toolCall).optional() }),
  z.object({ role: z.literal('tool'), content: z.string(), tool_call_id: z.string() }),
]);

/** Tool definitions are passed through to the provider as given. */
const toolSchema = z.object({
  type: z.literal('function'),
  function: z.object({ name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), description: z.string().optional(), parameters: z.record(z.string(), z.unknown()).optional(), strict: z.boolean().nullable().optional() }),
});

const sampling = {
  temperature: z.number().min(0).max(2).optional(),
  max_tokens: z.number().int().positive().max(1_000_000).optional(),
  top_p: z.number().min(0).max(1).optional(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).optional(),
  seed: z.number().int().optional(),
};

export const textGenerationInput = z
  .object({
    ...routing,
    messages: z.array(messageSchema).min(1).max(500).optional(),
    /** Shorthand for one user message (seed 001's `prompt`), with an optional system message. */
    prompt: z.string().min(1).optional(),
    system: z.string().optional(),
    ...sampling,
    response_format: z
      .discriminatedUnion('type', [
        z.object({ type: z.literal('text') }),
        z.object({ type: z.literal('json_object') }),
        z.object({ type: z.literal('json_schema'), json_schema: z.object({ name: z.string(), schema: z.record(z.string(), z.unknown()).optional(), strict: z.boolean().nullable().optional(), description: z.string().optional() }) }),
      ])
      .optional(),
    tools: z.array(toolSchema).max(128).optional(),
    tool_choice: z.union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) })]).optional(),
  })
  .refine((p) => !!p.messages !== !!p.prompt, 'give either messages or prompt');

export const embeddingInput = z
  .object({
    ...routing,
    /** One text or a batch. */
    input: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    /** Seed 001's name for `input`. */
    text_to_embed: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    dimensions: z.number().int().positive().max(8192).optional(),
  })
  .refine((p) => !!p.input !== !!p.text_to_embed, 'give either input or text_to_embed');

export const speechToTextInput = z
  .object({
    ...routing,
    /** Fetched by the orchestrator (size limit, content-type check) and sent as a multipart upload. */
    audio_url: httpUrl.optional(),
    /** Seed 001's name for `audio_url`. */
    audio_input_url: httpUrl.optional(),
    language: z.string().regex(/^[a-z]{2,3}(-[A-Za-z]{2})?$/).optional(),
    prompt: z.string().max(2000).optional(),
    temperature: z.number().min(0).max(1).optional(),
  })
  .refine((p) => !!p.audio_url !== !!p.audio_input_url, 'give either audio_url or audio_input_url');

export const imageUnderstandingInput = z
  .object({
    ...routing,
    image_url: imageRef.optional(),
    /** Seed 001's name for `image_url`. */
    image_input_url: imageRef.optional(),
    images: z.array(imageRef).min(1).max(16).optional(),
    prompt: z.string().min(1).default('Describe this image.'),
    system: z.string().optional(),
    detail: z.enum(['auto', 'low', 'high']).optional(),
    ...sampling,
  })
  .refine((p) => [p.image_url, p.image_input_url, p.images].filter(Boolean).length === 1, 'give one of image_url, image_input_url or images');

export const imageGenerationInput = z.object({
  ...routing,
  prompt: z.string().min(1).max(32_000),
  n: z.number().int().min(1).max(4).default(1),
  size: z.enum(['256x256', '512x512', '1024x1024', '1792x1024', '1024x1792', '1536x1024', '1024x1536', 'auto']).optional(),
  quality: z.enum(['standard', 'hd', 'low', 'medium', 'high', 'auto']).optional(),
  style: z.enum(['vivid', 'natural']).optional(),
  /** `url`: the provider's (short-lived) URL when it gives one; `reference`: stored by the hub. Bytes are never inlined. */
  output: z.enum(['url', 'reference']).default('url'),
});

const nonNegativeUsd = z.number().nonnegative().nullable();
export const setBudgetInput = z
  .object({ day_usd: nonNegativeUsd.optional(), month_usd: nonNegativeUsd.optional() })
  .refine((p) => p.day_usd !== undefined || p.month_usd !== undefined, 'give day_usd and/or month_usd (null clears it)');
export const getBudgetInput = z.object({});

export const usageSchema = z.object({
  prompt_tokens: z.number().int().nonnegative().optional(),
  completion_tokens: z.number().int().nonnegative().optional(),
  total_tokens: z.number().int().nonnegative().optional(),
  audio_seconds: z.number().nonnegative().optional(),
  images: z.number().int().nonnegative().optional(),
});

export const attemptSchema = z.object({
  provider: z.string(),
  model: z.string(),
  outcome: z.enum(['ok', 'failed', 'skipped']),
  status: z.number().int().optional(),
  reason: z.string().optional(),
  ms: z.number().nonnegative().optional(),
  key_source: z.enum(['workspace', 'platform', 'none']).optional(),
});

/** A stored blob (generated image, oversized response) named by its sha256. */
export const storedRefSchema = z.object({ url: z.string(), sha256: z.string(), bytes: z.number().int().nonnegative(), content_type: z.string() });

/** The outcome's `result` for every task (SPEC: provider_response, usage, cost, who answered). */
const taskResult = <S extends z.ZodType>(providerResponse: S) =>
  z.object({
    task: z.enum(TASKS),
    provider: z.string(),
    model: z.string(),
    alias: z.string(),
    provider_response: providerResponse,
    usage: usageSchema,
    cost_usd: z.number().nonnegative(),
    priced: z.boolean(),
    prices_as_of: z.string(),
    key_source: z.enum(['workspace', 'platform', 'none']),
    attempts: z.array(attemptSchema).min(1),
    /** Time waiting for providers, time spent by the orchestrator around them, and fetching media. */
    timing: z.object({ provider_ms: z.number().nonnegative(), overhead_ms: z.number().nonnegative(), fetch_ms: z.number().nonnegative().optional() }),
  });

const stored = z.object({ stored: storedRefSchema });
export const textGenerationOutput = taskResult(z.union([z.object({ id: z.string().optional(), choices: z.array(z.unknown()) }), stored.extend({ id: z.string().optional() })]));
export const embeddingOutput = taskResult(z.union([z.object({ embedding: z.array(z.number()), dimensions: z.number().int() }), z.object({ embeddings: z.array(z.array(z.number())), dimensions: z.number().int() }), stored.extend({ dimensions: z.number().int(), count: z.number().int() })]));
export const speechToTextOutput = taskResult(z.object({ transcription: z.string(), language: z.string().optional(), duration_seconds: z.number().optional() }));
export const imageUnderstandingOutput = taskResult(z.object({ id: z.string().optional(), image_analysis_text: z.string(), choices: z.array(z.unknown()) }));
export const imageGenerationOutput = taskResult(z.object({ images: z.array(z.object({ url: z.string().optional(), reference: storedRefSchema.optional(), revised_prompt: z.string().optional() })) }));

export const budgetOutput = z.object({
  workspace_id: z.string(),
  day_usd: z.number().nullable(),
  month_usd: z.number().nullable(),
  source: z.enum(['command', 'config', 'default', 'none']),
  spent_today_usd: z.number(),
  spent_month_usd: z.number(),
});

/** `ionflux.llm.ws_<id>.usage.recorded`: one per completed call, so analytics can sum spend. */
export const usageRecordedSchema = z.object({
  command_id: z.string(),
  agent_id: z.string(),
  task: z.enum(TASKS),
  provider: z.string(),
  model: z.string(),
  alias: z.string(),
  key_source: z.enum(['workspace', 'platform', 'none']),
  usage: usageSchema,
  cost_usd: z.number().nonnegative(),
  priced: z.boolean(),
  prices_as_of: z.string(),
  recorded_at: z.string(),
});
export type UsageRecorded = z.infer<typeof usageRecordedSchema>;

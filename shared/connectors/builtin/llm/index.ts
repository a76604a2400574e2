import { z } from 'zod';
import { baseEnv, parseEnv } from '../../../config.ts';
import { createSecretStore } from '../../../secrets/index.ts';
import type { Manifest } from '../../manifest.ts';
import type { ActionHandler, Connector } from '../../types.ts';
import { getBudget, setBudget } from './actions/budget.ts';
import { embedding } from './actions/embedding.ts';
import { imageGeneration } from './actions/image-generation.ts';
import { imageUnderstanding } from './actions/image-understanding.ts';
import { speechToText } from './actions/speech-to-text.ts';
import { textGeneration } from './actions/text-generation.ts';
import { createArtifactStore } from './artifacts.ts';
import { createSpendStore, memorySpendTable } from './budget.ts';
import { buildLlmConfig, llmEnvShape } from './config.ts';
import { llmRuntime, type LlmDeps } from './run.ts';
import * as s from './schemas.ts';

export type { LlmDeps } from './run.ts';

const task = (description: string, input: z.ZodType, output: z.ZodType, gate: 'read_only' | 'artifact_generation') =>
  ({ description, input, output, approvalGate: gate, permission: gate === 'read_only' ? 'read' : 'write_draft', auditRequired: false }) as const;

/**
 * Every model task on one command topic, `ionflux.cmd.llm`. Model calls need no approval (they
 * read, or produce drafts); each completed call is recorded by its usage event rather than an
 * audit entry. Changing the budget is a workspace write and is audited.
 */
export const manifest: Manifest = {
  id: 'llm',
  name: 'LLM orchestrator',
  category: 'ai',
  version: '1.0.0',
  authType: 'api_key',
  permissionsRequested: ['read', 'write_draft'],
  riskLevel: 'medium',
  authHelp:
    'Platform keys: OPENAI_API_KEY / ANTHROPIC_API_KEY / DEEPSEEK_API_KEY, or api_key at platform/<provider> in the secret store. A workspace uses its own key by storing api_key at workspaces/<ws>/connectors/<provider> (openai, anthropic, deepseek, or a configured local provider); it overrides the platform key. See docs/llm.md.',
  // Keys are per provider, resolved by the handlers themselves (see keys.ts).
  credentialFields: [],
  healthcheck: { description: 'Reports which providers have a platform key.' },
  disconnectPolicy: 'delete_credentials',
  dataRetentionPolicy: 'Prompts and answers exist only in the command and outcome records; generated images and oversized responses are kept under LLM_ARTIFACTS_DIR for LLM_ARTIFACTS_TTL_HOURS; usage events follow the topic retention.',
  actions: {
    text_generation: task('Chat completion with system/user/assistant messages, temperature, max tokens, JSON response format and tools.', s.textGenerationInput, s.textGenerationOutput, 'artifact_generation'),
    embedding: task('Embedding of one text or a batch.', s.embeddingInput, s.embeddingOutput, 'read_only'),
    speech_to_text: task('Transcription of audio fetched by URL.', s.speechToTextInput, s.speechToTextOutput, 'read_only'),
    image_understanding: task('Analysis of an image (by URL) with a prompt.', s.imageUnderstandingInput, s.imageUnderstandingOutput, 'read_only'),
    image_generation: task('Image generation; returns URLs or stored references, never the bytes.', s.imageGenerationInput, s.imageGenerationOutput, 'artifact_generation'),
    set_budget: { description: "Sets the workspace's LLM budget in USD per UTC day and month.", input: s.setBudgetInput, output: s.budgetOutput, approvalGate: 'workspace_write', permission: 'write_draft', auditRequired: true },
    get_budget: { description: "The workspace's LLM budget and spend today and this month.", input: s.getBudgetInput, output: s.budgetOutput, approvalGate: 'read_only', permission: 'read', auditRequired: false },
  },
};

const events = { 'usage.recorded': s.usageRecordedSchema };

/** The connector with its dependencies: the orchestrator passes a Kafka-backed spend store. */
export function createLlmConnector(deps: LlmDeps): Connector {
  const rt = llmRuntime(deps);
  return {
    manifest,
    events,
    handlers: {
      text_generation: textGeneration(rt),
      embedding: embedding(rt),
      speech_to_text: speechToText(rt),
      image_understanding: imageUnderstanding(rt),
      image_generation: imageGeneration(rt),
      set_budget: setBudget(rt),
      get_budget: getBudget(rt),
    },
    healthcheck: async () => healthOf(deps.config.providers),
  };
}

function healthOf(providers: LlmDeps['config']['providers']): { ok: boolean; detail: string } {
  const withKey = Object.values(providers).filter((p) => p.envKey || !p.keyRequired).map((p) => p.id);
  return { ok: true, detail: withKey.length ? `platform keys in the environment for: ${withKey.join(', ')}` : 'no platform key in the environment; keys are read from the secret store per call' };
}

/** Dependencies from the environment alone, spend kept in memory: for listings and single-process use. */
function defaultDeps(): LlmDeps {
  const env = parseEnv(baseEnv.extend(llmEnvShape));
  const config = buildLlmConfig(env);
  return {
    config,
    store: createSecretStore(env),
    spend: createSpendStore({ table: memorySpendTable(), publish: async () => undefined, config, now: Date.now }),
    artifacts: createArtifactStore({ dir: env.LLM_ARTIFACTS_DIR, baseUrl: env.LLM_ARTIFACTS_BASE_URL ?? 'http://127.0.0.1:8091' }),
  };
}

let lazy: Connector | undefined;
const viaDefault = (action: string): ActionHandler => (ctx) => (lazy ??= createLlmConnector(defaultDeps())).handlers[action]!(ctx);

/**
 * What `loadConnectors()` finds: the manifest, and handlers that build their dependencies from
 * the environment on first use. services/llm-orchestrator builds its own with createLlmConnector.
 */
export const connector: Connector = {
  manifest,
  events,
  handlers: Object.fromEntries(Object.keys(manifest.actions).map((a) => [a, viaDefault(a)])),
  healthcheck: async () => {
    try {
      return healthOf(buildLlmConfig(parseEnv(z.object(llmEnvShape))).providers);
    } catch (e) {
      return { ok: false, detail: (e as Error).message };
    }
  },
};

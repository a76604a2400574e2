import { z } from 'zod';
import type { Manifest } from '../manifest.ts';
import type { ConnectorSpec } from '../types.ts';
import * as s from './llm-schemas.ts';

const task = (description: string, input: z.ZodType, output: z.ZodType, gate: 'read_only' | 'artifact_generation') =>
  ({ description, input, output, approvalGate: gate, permission: gate === 'read_only' ? 'read' : 'write_draft', auditRequired: false }) as const;

/**
 * Every model task on one command topic, `ionflux.cmd.llm`. Model calls need no approval (they
 * read, or produce drafts); each completed call is recorded by its usage event rather than an
 * audit entry. Changing the budget is a workspace write and is audited.
 */
const manifest: Manifest = {
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
    set_budget: { description: "Sets the workspace's LLM budget in USD per UTC day and month.", input: s.setBudgetInput, output: s.budgetOutput, approvalGate: 'workspace_write', permission: 'write_draft', auditRequired: true, invokedBy: ['admin'] },
    get_budget: { description: "The workspace's LLM budget and spend today and this month.", input: s.getBudgetInput, output: s.budgetOutput, approvalGate: 'read_only', permission: 'read', auditRequired: false },
  },
};

/** The LLM orchestrator's contract; its implementation is services/llm-orchestrator/connector/. */
export const spec: ConnectorSpec = {
  manifest,
  events: { 'usage.recorded': s.usageRecordedSchema },
  // The orchestrator resolves keys per provider and call; from here one can only say which are set.
  async healthcheck() {
    const set = ['OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'DEEPSEEK_API_KEY'].filter((k) => process.env[k]);
    return { ok: true, detail: set.length ? `platform keys in this environment: ${set.join(', ')}` : 'no platform key in this environment; keys are read from the secret store per call (docs/llm.md)' };
  },
};

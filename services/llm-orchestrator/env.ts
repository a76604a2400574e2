import { z } from 'zod';
import { commandEnvShape } from '../../shared/commands/service.ts';
import { baseEnv, port } from '../../shared/config.ts';
import { llmEnvShape } from './connector/config.ts';
import { PARTITIONS_AT_ONCE } from '../../shared/commands/worker.ts';

/** The orchestrator's environment: the LLM connector's variables (docs/llm.md) plus how the service runs. */
export const llmOrchestratorEnv = baseEnv.extend({
  ...llmEnvShape,
  ...commandEnvShape,
  /** The command topic is ionflux.cmd.<this>; a bench runs its own orchestrator under another name. */
  LLM_SERVICE: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/).default('llm'),
  LLM_INSTANCE_ID: z.string().regex(/^[a-z0-9_-]{1,40}$/).default('0'),
  LLM_OPS_PORT: port(8091),
  LLM_OPS_HOST: z.string().default('127.0.0.1'),
  /** Per workspace: sustained model calls per second and burst; over it, that workspace's commands wait. */
  LLM_RATE_PER_SECOND: z.coerce.number().positive().default(10),
  LLM_RATE_BURST: z.coerce.number().int().positive().default(20),
  /** Whole fallback chain of one command, including fetching audio. */
  LLM_ACTION_TIMEOUT_MS: z.coerce.number().int().positive().default(180_000),
  /** Attempts of the whole chain when every provider failed retryably, with backoff honouring Retry-After. */
  LLM_RETRY_MAX_ATTEMPTS: z.coerce.number().int().positive().default(3),
  LLM_RETRY_MAX_WAIT_MS: z.coerce.number().int().positive().default(30_000),
  /** Partitions of ionflux.cmd.llm worked on at once: a slow model call on one does not hold the others. */
  LLM_PARTITIONS_CONCURRENTLY: z.coerce.number().int().positive().default(PARTITIONS_AT_ONCE),
});
export type LlmOrchestratorEnv = z.infer<typeof llmOrchestratorEnv>;

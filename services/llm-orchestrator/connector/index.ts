import { spec } from '../../../shared/connectors/catalog/llm.ts';
import type { Connector } from '../../../shared/connectors/types.ts';
import { getBudget, setBudget } from './actions/budget.ts';
import { embedding } from './actions/embedding.ts';
import { imageGeneration } from './actions/image-generation.ts';
import { imageUnderstanding } from './actions/image-understanding.ts';
import { speechToText } from './actions/speech-to-text.ts';
import { textGeneration } from './actions/text-generation.ts';
import { llmRuntime, type LlmDeps } from './run.ts';

export type { LlmDeps } from './run.ts';

/** The connector with its dependencies: the orchestrator passes a Kafka-backed spend store. */
export function createLlmConnector(deps: LlmDeps): Connector {
  const rt = llmRuntime(deps);
  return {
    ...spec,
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


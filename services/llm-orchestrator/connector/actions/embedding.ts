import { HubError } from '../../../../shared/errors.ts';
import { handler } from '../../../../shared/connectors/types.ts';
import { runTask, type LlmRuntime } from '../run.ts';
import { embeddingInput } from '../../../../shared/connectors/catalog/llm-schemas.ts';

// Float32 values need at most 9 significant digits to survive a round trip; JSON would print 17.
const f32 = (v: number) => Number(v.toPrecision(9));

/** One text -> `embedding`; a batch -> `embeddings`, in input order. */
export const embedding = (rt: LlmRuntime) =>
  handler(embeddingInput, async (ctx) => {
    const input = (ctx.params.input ?? ctx.params.text_to_embed)!;
    const batch = Array.isArray(input);
    if (batch && input.length > rt.config.embeddingMaxInputs) throw new HubError('too_many_inputs', `at most ${rt.config.embeddingMaxInputs} texts per embedding command (got ${input.length})`);
    return runTask(rt, ctx, 'embedding', {
      // The SDK asks OpenAI for base64 and decodes it; local servers may only speak floats.
      call: (client, route, signal) => client.embeddings.create({ model: route.model, input, dimensions: ctx.params.dimensions, ...(route.provider === 'openai' ? {} : { encoding_format: 'float' as const }) }, { signal }),
      billed: (res) => ({ usage: { prompt_tokens: res.usage?.prompt_tokens, total_tokens: res.usage?.total_tokens } }),
      respond: (res) => {
        const vectors = [...res.data].sort((a, b) => a.index - b.index).map((d) => d.embedding.map(f32));
        const dimensions = vectors[0]?.length ?? 0;
        return batch ? { embeddings: vectors, dimensions } : { embedding: vectors[0] ?? [], dimensions };
      },
    });
  });

import type OpenAI from 'openai';
import { handler } from '../../../../shared/connectors/types.ts';
import { runTask, type LlmRuntime } from '../run.ts';
import { imageUnderstandingInput } from '../../../../shared/connectors/catalog/llm-schemas.ts';

/** Chat with image content parts; the provider fetches the image URL (or reads the data URL). */
export const imageUnderstanding = (rt: LlmRuntime) =>
  handler(imageUnderstandingInput, async (ctx) => {
    const p = ctx.params;
    const images = p.images ?? [(p.image_url ?? p.image_input_url)!];
    const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
      ...(p.system ? [{ role: 'system' as const, content: p.system }] : []),
      { role: 'user', content: [{ type: 'text', text: p.prompt }, ...images.map((url) => ({ type: 'image_url' as const, image_url: { url, ...(p.detail ? { detail: p.detail } : {}) } }))] },
    ];
    return runTask(rt, ctx, 'image_understanding', {
      call: (client, route, signal) => client.chat.completions.create({ model: route.model, messages, temperature: p.temperature, max_tokens: p.max_tokens, top_p: p.top_p, stop: p.stop, seed: p.seed }, { signal }),
      billed: (res) => ({ usage: { prompt_tokens: res.usage?.prompt_tokens, completion_tokens: res.usage?.completion_tokens, total_tokens: res.usage?.total_tokens } }),
      respond: (res) => ({ id: res.id, image_analysis_text: res.choices[0]?.message.content ?? '', choices: res.choices.map(({ index, message, finish_reason }) => ({ index, message, finish_reason })) }),
    });
  });

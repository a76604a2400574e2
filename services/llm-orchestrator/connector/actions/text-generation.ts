import type OpenAI from 'openai';
import { handler } from '../../../../shared/connectors/types.ts';
import { runTask, type LlmRuntime } from '../run.ts';
import { textGenerationInput } from '../../../../shared/connectors/catalog/llm-schemas.ts';

type Params = OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;

/** Chat completions: messages (or prompt + system), sampling, JSON response format and tools passed through. */
export const textGeneration = (rt: LlmRuntime) =>
  handler(textGenerationInput, async (ctx) => {
    const p = ctx.params;
    const messages = p.messages ?? [...(p.system ? [{ role: 'system' as const, content: p.system }] : []), { role: 'user' as const, content: p.prompt! }];
    const body = {
      messages: messages as Params['messages'],
      temperature: p.temperature,
      max_tokens: p.max_tokens,
      top_p: p.top_p,
      stop: p.stop,
      seed: p.seed,
      response_format: p.response_format as Params['response_format'],
      tools: p.tools as Params['tools'],
      tool_choice: p.tool_choice as Params['tool_choice'],
    };
    return runTask(rt, ctx, 'text_generation', {
      call: (client, route, signal) => client.chat.completions.create({ ...body, model: route.model }, { signal }),
      billed: (res) => ({ usage: { prompt_tokens: res.usage?.prompt_tokens, completion_tokens: res.usage?.completion_tokens, total_tokens: res.usage?.total_tokens } }),
      respond: (res) => ({ id: res.id, choices: res.choices.map(({ index, message, finish_reason }) => ({ index, message, finish_reason })) }),
    });
  });

import type OpenAI from 'openai';
import { handler } from '../../../../shared/connectors/types.ts';
import { sniffImageType } from '../artifacts.ts';
import { runTask, type LlmRuntime } from '../run.ts';
import { imageGenerationInput } from '../../../../shared/connectors/catalog/llm-schemas.ts';

type Params = OpenAI.Images.ImageGenerateParamsNonStreaming;

/**
 * Images come back as the provider's URL or as a reference to bytes stored by the hub; the
 * bytes themselves never go into a record (a 1024x1024 PNG is 1-3 MB, over the broker's limit).
 */
export const imageGeneration = (rt: LlmRuntime) =>
  handler(imageGenerationInput, async (ctx) => {
    const p = ctx.params;
    return runTask(rt, ctx, 'image_generation', {
      call: (client, route, signal) => {
        // gpt-image models always answer base64 and refuse response_format.
        const format = route.model.startsWith('gpt-image') ? {} : { response_format: p.output === 'reference' ? ('b64_json' as const) : ('url' as const) };
        const body: Params = { model: route.model, prompt: p.prompt, n: p.n, size: p.size as Params['size'], quality: p.quality as Params['quality'], style: p.style, ...format };
        return client.images.generate(body, { signal });
      },
      billed: (res) => ({
        usage: { images: res.data?.length ?? 0, prompt_tokens: res.usage?.input_tokens, completion_tokens: res.usage?.output_tokens, total_tokens: res.usage?.total_tokens },
        // What the provider says it made, then what was asked (`auto` says nothing); unknown
        // prices at the model's highest (costOf).
        image: { size: res.size ?? known(p.size) ?? '1024x1024', quality: res.quality ?? known(p.quality) ?? 'standard' },
      }),
      // Storing a base64 image may fail (disk full, say): the images are billed by then, and counted.
      respond: async (res) => ({
        images: await Promise.all(
          (res.data ?? []).map(async (img) => {
            const revised = img.revised_prompt ? { revised_prompt: img.revised_prompt } : {};
            if (img.b64_json) {
              const bytes = Buffer.from(img.b64_json, 'base64');
              return { reference: await rt.artifacts.put(bytes, sniffImageType(bytes), ctx.workspaceId), ...revised };
            }
            return { url: img.url, ...revised };
          }),
        ),
      }),
    });
  });

/** A requested size or quality, unless it left the choice to the model. */
const known = (v: string | undefined): string | undefined => (v === 'auto' ? undefined : v);

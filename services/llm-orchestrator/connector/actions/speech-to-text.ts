import { performance } from 'node:perf_hooks';
import { toFile } from 'openai';
import type { Transcription } from 'openai/resources/audio/transcriptions';
import { handler } from '../../../../shared/connectors/types.ts';
import { fetchAudio, wavSeconds } from '../media.ts';
import { checkBudget } from '../budget.ts';
import { runTask, type LlmRuntime } from '../run.ts';
import { speechToTextInput } from '../../../../shared/connectors/catalog/llm-schemas.ts';

/** Audio by URL: fetched here (size limit, content-type check), sent as a multipart transcription. */
export const speechToText = (rt: LlmRuntime) =>
  handler(speechToTextInput, async (ctx) => {
    const started = performance.now();
    // Before the download (up to 25 MiB): a workspace over its budget is refused without it.
    checkBudget(rt.spend, ctx.workspaceId);
    const media = await fetchAudio((ctx.params.audio_url ?? ctx.params.audio_input_url)!, { ...rt.config.media, signal: ctx.signal });
    const file = await toFile(media.bytes, media.filename, { type: media.contentType });
    const prepMs = performance.now() - started;
    return runTask(
      rt,
      ctx,
      'speech_to_text',
      // whisper models give the duration (what they bill by) in verbose_json.
      (client, route, signal) =>
        client.audio.transcriptions.create(
          { file, model: route.model, language: ctx.params.language, prompt: ctx.params.prompt, temperature: ctx.params.temperature, response_format: route.model.startsWith('whisper') ? 'verbose_json' : 'json' },
          { signal },
        ) as Promise<Transcription & { duration?: number; language?: string }>,
      (res) => {
        // What the provider billed (whole seconds for whisper-1), else the audio's own length.
        const billed = res.usage?.type === 'duration' ? res.usage.seconds : undefined;
        const duration = res.duration ?? wavSeconds(media.bytes);
        const tokens = res.usage?.type === 'tokens' ? res.usage : undefined;
        return {
          providerResponse: { transcription: res.text, ...(res.language ? { language: res.language } : {}), ...((duration ?? billed) !== undefined ? { duration_seconds: duration ?? billed } : {}) },
          usage: { audio_seconds: billed ?? duration, prompt_tokens: tokens?.input_tokens, completion_tokens: tokens?.output_tokens, total_tokens: tokens?.total_tokens },
        };
      },
      { started, prepMs },
    );
  });

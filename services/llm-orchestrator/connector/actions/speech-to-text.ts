import { performance } from 'node:perf_hooks';
import { toFile } from 'openai';
import type { Transcription } from 'openai/resources/audio/transcriptions';
import { handler } from '../../../../shared/connectors/types.ts';
import { fetchAudio, wavSeconds } from '../media.ts';
import { checkBudget } from '../budget.ts';
import { runTask, type LlmRuntime } from '../run.ts';
import { speechToTextInput } from '../../../../shared/connectors/catalog/llm-schemas.ts';

type Answer = Transcription & { duration?: number; language?: string };

/** Audio by URL: fetched here (size limit, content-type check), sent as a multipart transcription. */
export const speechToText = (rt: LlmRuntime) =>
  handler(speechToTextInput, async (ctx) => {
    const started = performance.now();
    // Before the download (up to 25 MiB): a workspace over its budget is refused without it.
    checkBudget(rt.spend, ctx.workspaceId);
    const media = await fetchAudio((ctx.params.audio_url ?? ctx.params.audio_input_url)!, { ...rt.config.media, signal: ctx.signal });
    const file = await toFile(media.bytes, media.filename, { type: media.contentType });
    const prepMs = performance.now() - started;
    // What the provider billed (whole seconds for whisper-1), and the audio's own length.
    const billedSeconds = (res: Answer) => (res.usage?.type === 'duration' ? res.usage.seconds : undefined);
    const duration = (res: Answer) => res.duration ?? wavSeconds(media.bytes);
    return runTask(
      rt,
      ctx,
      'speech_to_text',
      {
        // whisper models give the duration (what they bill by) in verbose_json.
        call: (client, route, signal) =>
          client.audio.transcriptions.create(
            { file, model: route.model, language: ctx.params.language, prompt: ctx.params.prompt, temperature: ctx.params.temperature, response_format: route.model.startsWith('whisper') ? 'verbose_json' : 'json' },
            { signal },
          ) as Promise<Answer>,
        billed: (res) => {
          const tokens = res.usage?.type === 'tokens' ? res.usage : undefined;
          return { usage: { audio_seconds: billedSeconds(res) ?? duration(res), prompt_tokens: tokens?.input_tokens, completion_tokens: tokens?.output_tokens, total_tokens: tokens?.total_tokens } };
        },
        respond: (res) => {
          const seconds = duration(res) ?? billedSeconds(res);
          return { transcription: res.text, ...(res.language ? { language: res.language } : {}), ...(seconds !== undefined ? { duration_seconds: seconds } : {}) };
        },
      },
      { started, prepMs },
    );
  });

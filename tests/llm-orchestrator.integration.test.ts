import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DLQ_HEADERS } from '../shared/bus/dead-letter.ts';
import { topics } from '../shared/bus/topics.ts';
import { createHubClient, type HubClient, type Outcome } from '../shared/commands/client.ts';
import { defaultOutcomeTopic } from '../shared/commands/outcome.ts';
import { DEFAULT_PRICES, PRICES_TAKEN_AT } from '../services/llm-orchestrator/connector/prices.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { secretPaths } from '../shared/secrets/store.ts';
import { infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';
import { freePort } from './helpers/ingester.ts';
import { sineWav, startMediaServer, startOrchestrator, type RunningOrchestrator } from './helpers/llm.ts';
import { startOpenAISimulator, type OpenAISimulator } from './simulators/openai.ts';

const env = infraEnv();
const key = (p: string) => `${p}-${randomBytes(18).toString('hex')}`;
const keys = { openai: key('sk-platform'), anthropic: key('sk-ant-platform'), deepseek: key('sk-ds-platform'), stored: key('sk-stored'), workspace: key('sk-ws-own'), bad: key('sk-ws-bad') };
const IMAGE_BYTES = 1_500_000;

type Result = {
  provider: string;
  model: string;
  alias: string;
  provider_response: Record<string, unknown>;
  usage: Record<string, number>;
  cost_usd: number;
  key_source: string;
  attempts: { provider: string; model: string; outcome: string; status?: number; reason?: string }[];
  timing: { provider_ms: number; overhead_ms: number };
};
const result = (o: Outcome) => o.result as Result;

describe('llm orchestrator: every task through Kafka, against local OpenAI-API simulators', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let openai: OpenAISimulator;
  let anthropic: OpenAISimulator;
  let media: Awaited<ReturnType<typeof startMediaServer>>;
  let orchestrator: RunningOrchestrator;
  let client: HubClient;
  let artifactsDir: string;
  const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });
  // Providers only this run knows, so the shared Vault's platform/ paths of other runs never interfere.
  const storedProvider = uid('sp');
  const keylessProvider = uid('np');
  const zeroBudgetWs = uid('ws');
  const workspaces: string[] = [zeroBudgetWs];

  const send = (ws: string, action: string, params: Record<string, unknown>) => {
    if (!workspaces.includes(ws)) workspaces.push(ws);
    return client.send({ workspace_id: ws, agent_id: 'agent-7', service: 'llm', action, params }, { timeoutMs: 60_000 });
  };
  const lastRequest = (sim: OpenAISimulator, path: string) => sim.requests.filter((r) => r.path === path).at(-1)!;
  /**
   * The workspace's latest day and month totals on the spend topic (the sum of its shards, one per
   * command partition), once they count `calls` calls (read until then).
   */
  const spendOf = async (ws: string, calls: number) => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const latest = new Map<string, { usd: number; calls: number }>();
      for (const r of await infra.bus.readToEnd(topics.state('llm-spend'))) if (r.key?.toString().startsWith(`${ws}:`)) latest.set(r.key.toString(), JSON.parse(r.value!.toString()));
      const sum = (period: RegExp) => {
        const shards = [...latest].filter(([k]) => period.test(k)).map(([, v]) => v);
        return shards.length ? { usd: Math.round(shards.reduce((n, v) => n + v.usd, 0) * 1e8) / 1e8, calls: shards.reduce((n, v) => n + v.calls, 0) } : undefined;
      };
      const day = sum(/^[^:]+:\d{4}-\d{2}-\d{2}(:[^:]+)?$/);
      const month = sum(/^[^:]+:\d{4}-\d{2}(:[^:]+)?$/);
      if ((day && day.calls >= calls) || Date.now() > deadline) return { day, month };
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  beforeAll(async () => {
    infra = await realInfra('llm-test');
    openai = await startOpenAISimulator({ name: 'openai-sim', keys: [keys.openai, keys.stored, keys.workspace], imageBytes: IMAGE_BYTES });
    anthropic = await startOpenAISimulator({ name: 'anthropic-sim', keys: [keys.anthropic] });
    media = await startMediaServer();
    artifactsDir = await mkdtemp(join(tmpdir(), 'llm-artifacts-'));
    await vault.put(secretPaths.platform(storedProvider), { api_key: keys.stored });
    const closedPort = await freePort();
    orchestrator = await startOrchestrator({
      LOG_LEVEL: 'debug',
      OPENAI_BASE_URL: openai.url,
      OPENAI_API_KEY: keys.openai,
      ANTHROPIC_BASE_URL: anthropic.url,
      ANTHROPIC_API_KEY: keys.anthropic,
      // Nothing listens there: connection refused.
      DEEPSEEK_BASE_URL: `http://127.0.0.1:${closedPort}/v1`,
      DEEPSEEK_API_KEY: keys.deepseek,
      LLM_EXTRA_PROVIDERS: JSON.stringify({
        [storedProvider]: { base_url: openai.url, key_required: true, models: { 'stored-chat': { model: 'gpt-4o-mini', tasks: ['text_generation'] } } },
        [keylessProvider]: { base_url: openai.url, key_required: true, models: { 'keyless-chat': { model: 'gpt-4o-mini', tasks: ['text_generation'] } } },
      }),
      LLM_COOLDOWN_MS: '3000',
      LLM_MEDIA_MAX_BYTES: '200000',
      LLM_WORKSPACE_BUDGETS: JSON.stringify({ [zeroBudgetWs]: { day_usd: 0 } }),
      LLM_RETRY_MAX_ATTEMPTS: '2',
      LLM_RETRY_MAX_WAIT_MS: '1000',
      LLM_ARTIFACTS_DIR: artifactsDir,
    });
    client = await createHubClient({ brokers: env.brokers, auth: env.auth, registryUrl: env.registryUrl });
  }, 180_000);

  afterAll(async () => {
    await client?.close();
    await orchestrator?.stop();
    await Promise.all([openai?.close(), anthropic?.close(), media?.close(), infra?.close()]);
    await vault.delete(secretPaths.platform(storedProvider)).catch(() => undefined);
    if (artifactsDir) await rm(artifactsDir, { recursive: true, force: true });
  });

  it('text_generation: messages, temperature, max tokens, JSON format and tools reach the provider; the outcome carries choices, usage, cost, provider, model and attempts; a usage event is published', async () => {
    const ws = uid('ws');
    const tools = [{ type: 'function', function: { name: 'lookup_order', description: 'Find an order', parameters: { type: 'object', properties: { id: { type: 'string' } } } } }];
    const out = await send(ws, 'text_generation', {
      model: 'gpt-4o',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'What is 2+2?' },
        { role: 'assistant', content: '4' },
        { role: 'user', content: 'Answer as JSON: and 3+3?' },
      ],
      temperature: 0.2,
      max_tokens: 100,
      response_format: { type: 'json_object' },
    });
    expect(out).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(out.event.event_type).toBe('llm.command.succeeded');
    const r = result(out);
    expect(r).toMatchObject({ provider: 'openai', model: 'gpt-4o', alias: 'gpt-4o', key_source: 'platform', attempts: [{ provider: 'openai', model: 'gpt-4o', outcome: 'ok' }] });
    const choices = r.provider_response.choices as { message: { content: string }; finish_reason: string }[];
    expect(JSON.parse(choices[0]!.message.content)).toMatchObject({ answer: 'Answer as JSON: and 3+3?', model: 'gpt-4o', by: 'openai-sim' });
    const sent = lastRequest(openai, '/v1/chat/completions');
    expect(sent.body).toMatchObject({ model: 'gpt-4o', temperature: 0.2, max_tokens: 100, response_format: { type: 'json_object' } });
    expect((sent.body.messages as { role: string }[]).map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(sent.key).toBe(keys.openai);
    const price = DEFAULT_PRICES['openai/gpt-4o']!;
    expect(r.usage.total_tokens).toBe(r.usage.prompt_tokens! + r.usage.completion_tokens!);
    expect(r.cost_usd).toBeCloseTo((r.usage.prompt_tokens! / 1000) * price.input_per_1k! + (r.usage.completion_tokens! / 1000) * price.output_per_1k!, 8);
    expect(r.cost_usd).toBeGreaterThan(0);
    expect(r.timing.overhead_ms).toBeGreaterThanOrEqual(0);

    // Tools are passed through; the model's tool call comes back in the choices.
    const called = await send(ws, 'text_generation', { prompt: 'Where is order 42?', system: 'Use tools.', tools, tool_choice: 'required' });
    expect(lastRequest(openai, '/v1/chat/completions').body).toMatchObject({ tools, tool_choice: 'required', messages: [{ role: 'system' }, { role: 'user', content: 'Where is order 42?' }] });
    expect((result(called).provider_response.choices as { finish_reason: string; message: { tool_calls: { function: { name: string } }[] } }[])[0]).toMatchObject({ finish_reason: 'tool_calls', message: { tool_calls: [{ function: { name: 'lookup_order' } }] } });

    const usage = await readAll(infra.bus, topics.event('llm', ws, 'usage', 'recorded'), { atLeast: 2 });
    const events = await Promise.all(usage.map((u) => infra.codec.decode(u.value!)));
    expect(events).toHaveLength(2);
    expect(events.map((e) => e.event_type)).toEqual(['llm.usage.recorded', 'llm.usage.recorded']);
    const first = events.find((e) => e.correlation_id === out.command_id)!;
    expect(JSON.parse(first.payload_json)).toMatchObject({ command_id: out.command_id, agent_id: 'agent-7', task: 'text_generation', provider: 'openai', model: 'gpt-4o', usage: r.usage, cost_usd: r.cost_usd, prices_as_of: PRICES_TAKEN_AT });
  });

  it("registers each llm action's input and output contract in the schema registry as JSON Schema", async () => {
    const subjects = (await (await fetch(`${env.registryUrl}/subjects`)).json()) as string[];
    for (const action of ['text_generation', 'embedding', 'speech_to_text', 'image_understanding', 'image_generation']) {
      expect(subjects).toEqual(expect.arrayContaining([`ionflux.connector.llm.${action}.input`, `ionflux.connector.llm.${action}.output`]));
    }
    const latest = (await (await fetch(`${env.registryUrl}/subjects/ionflux.connector.llm.text_generation.input/versions/latest`)).json()) as { schemaType?: string; schema: string };
    expect(latest.schemaType).toBe('JSON');
    expect(JSON.parse(latest.schema)).toMatchObject({ type: 'object', properties: { messages: expect.any(Object) } });
  });

  it('embedding: one text gives `embedding`, a batch gives `embeddings` in order, with token usage and cost', async () => {
    const ws = uid('ws');
    const one = await send(ws, 'embedding', { text_to_embed: 'the quick brown fox' });
    expect(one.status).toBe('succeeded');
    const r1 = result(one);
    expect(r1).toMatchObject({ provider: 'openai', model: 'text-embedding-3-small', provider_response: { dimensions: 1536 } });
    const v = r1.provider_response.embedding as number[];
    expect(v).toHaveLength(1536);
    expect(Math.hypot(...v)).toBeCloseTo(1, 4);
    // The SDK asked for base64 and decoded it (what OpenAI recommends); the floats survived.
    expect(lastRequest(openai, '/v1/embeddings').body).toMatchObject({ encoding_format: 'base64', input: 'the quick brown fox' });

    const batch = await send(ws, 'embedding', { input: ['alpha', 'beta', 'the quick brown fox'], dimensions: 256 });
    const r2 = result(batch);
    const vs = r2.provider_response.embeddings as number[][];
    expect(vs.map((x) => x.length)).toEqual([256, 256, 256]);
    expect(r2.usage.prompt_tokens).toBeGreaterThan(0);
    expect(r2.cost_usd).toBeCloseTo((r2.usage.prompt_tokens! / 1000) * DEFAULT_PRICES['openai/text-embedding-3-small']!.input_per_1k!, 10);
  });

  it('speech_to_text: audio fetched by URL and sent as a multipart transcription, billed by the second; a wrong content type or an oversized file is refused before any vendor call', async () => {
    const ws = uid('ws');
    const url = media.serve(`/${ws}/note.wav`, sineWav(2.5), 'audio/wav');
    const out = await send(ws, 'speech_to_text', { audio_input_url: url, language: 'en' });
    expect(out.status).toBe('succeeded');
    const r = result(out);
    expect(r.provider_response).toMatchObject({ transcription: expect.stringContaining('note.wav'), duration_seconds: 2.5, language: 'english' });
    expect(r.usage.audio_seconds).toBe(3);
    expect(r.cost_usd).toBeCloseTo((3 / 60) * 0.006, 8);
    const sent = lastRequest(openai, '/v1/audio/transcriptions');
    expect(sent.body).toMatchObject({ model: 'whisper-1', language: 'en', response_format: 'verbose_json', file: { name: 'note.wav', type: 'audio/wav', bytes: sineWav(2.5).length } });

    const before = openai.count('/v1/audio/transcriptions');
    const html = media.serve(`/${ws}/page.wav`, Buffer.from('<html></html>'), 'text/html');
    expect(await send(ws, 'speech_to_text', { audio_url: html })).toMatchObject({ status: 'failed', error: { code: 'unsupported_media_type', message: expect.stringContaining('text/html') } });
    const big = media.serve(`/${ws}/long.wav`, sineWav(8), 'audio/wav');
    expect(await send(ws, 'speech_to_text', { audio_url: big })).toMatchObject({ status: 'failed', error: { code: 'media_too_large' } });
    // Without Content-Length the limit holds while streaming.
    const chunked = media.serve(`/${ws}/chunked.wav`, sineWav(8), 'audio/wav', false);
    expect(await send(ws, 'speech_to_text', { audio_url: chunked })).toMatchObject({ status: 'failed', error: { code: 'media_too_large' } });
    expect(openai.count('/v1/audio/transcriptions')).toBe(before);
  });

  it('image_understanding: the image goes as an image_url content part; the analysis comes back as image_analysis_text', async () => {
    const ws = uid('ws');
    const image = 'https://cdn.example.com/products/shoe.png';
    const out = await send(ws, 'image_understanding', { image_input_url: image, prompt: 'What product is this?', detail: 'low' });
    expect(out.status).toBe('succeeded');
    expect(result(out)).toMatchObject({ provider: 'openai', model: 'gpt-4o', provider_response: { image_analysis_text: expect.stringContaining('saw 1 image(s)') } });
    const content = (lastRequest(openai, '/v1/chat/completions').body.messages as { content: unknown }[])[0]!.content;
    expect(content).toEqual([{ type: 'text', text: 'What product is this?' }, { type: 'image_url', image_url: { url: image, detail: 'low' } }]);
  });

  it('image_generation: the provider URL by default, a stored reference for base64 images, and the record stays small', async () => {
    const ws = uid('ws');
    const byUrl = await send(ws, 'image_generation', { prompt: 'a badge for 100 sales', size: '1024x1024' });
    const r1 = result(byUrl);
    expect(r1).toMatchObject({ provider: 'openai', model: 'dall-e-3', usage: { images: 1 }, cost_usd: 0.04 });
    const img = (r1.provider_response.images as { url: string; revised_prompt: string }[])[0]!;
    expect(img.url).toMatch(new RegExp(`^${openai.origin}/files/`));
    expect(img.revised_prompt).toContain('(revised)');

    const stored = await send(ws, 'image_generation', { prompt: 'a hd badge', quality: 'hd', size: '1792x1024', output: 'reference' });
    const r2 = result(stored);
    expect(r2.cost_usd).toBe(0.12);
    expect(lastRequest(openai, '/v1/images/generations').body).toMatchObject({ response_format: 'b64_json', quality: 'hd', size: '1792x1024' });
    const ref = (r2.provider_response.images as { reference: { url: string; sha256: string; bytes: number; content_type: string } }[])[0]!.reference;
    expect(ref).toMatchObject({ bytes: IMAGE_BYTES, content_type: 'image/png' });
    expect(ref.url.startsWith(`${orchestrator.url}/artifacts/`)).toBe(true);
    const got = Buffer.from(await (await fetch(ref.url)).arrayBuffer());
    expect(got.length).toBe(IMAGE_BYTES);
    expect(createHash('sha256').update(got).digest('hex')).toBe(ref.sha256);
    // The URL is signed for this workspace and expires: another workspace, a bare name or a
    // tampered expiry opens nothing.
    const signed = new URL(ref.url);
    expect(signed.searchParams.get('ws')).toBe(ws);
    const other = new URL(ref.url);
    other.searchParams.set('ws', uid('ws'));
    const later = new URL(ref.url);
    later.searchParams.set('exp', String(Number(signed.searchParams.get('exp')) + 3600));
    for (const url of [other.href, `${signed.origin}${signed.pathname}`, later.href]) {
      const res = await fetch(url);
      expect(res.status, url).toBe(403);
      expect(await res.json()).toEqual({ error: 'invalid_signature' });
    }

    // gpt-image models always answer base64: stored too, without asking for a response_format.
    const gptImage = await send(ws, 'image_generation', { model: 'gpt-image-1', prompt: 'a sticker', quality: 'auto' });
    expect(lastRequest(openai, '/v1/images/generations').body.response_format).toBeUndefined();
    expect((result(gptImage).provider_response.images as { reference?: unknown }[])[0]!.reference).toBeDefined();
    // Priced by what the provider says it made (medium, 1024x1024), not the top price `auto` would fall to.
    expect(result(gptImage).cost_usd).toBeCloseTo((DEFAULT_PRICES['openai/gpt-image-1']!.per_image as Record<string, number>)['medium:1024x1024']!, 8);

    const records = await readAll(infra.bus, defaultOutcomeTopic('llm', ws), { atLeast: 3 });
    expect(records.length).toBe(3);
    for (const rec of records) expect(rec.value!.length).toBeLessThan(16 * 1024);
  });

  it("a workspace's own key overrides the platform key (the provider sees which key came); a platform key from the secret store serves a configured provider", async () => {
    const own = uid('ws');
    const other = uid('ws');
    await vault.put(secretPaths.workspace(own, 'openai'), { api_key: keys.workspace });
    const a = await send(own, 'text_generation', { prompt: `mine ${own}` });
    const b = await send(other, 'text_generation', { prompt: `platform ${other}` });
    expect(result(a).key_source).toBe('workspace');
    expect(result(b).key_source).toBe('platform');
    const seen = (text: string) => openai.requests.find((r) => JSON.stringify(r.body).includes(text))!.key;
    expect(seen(`mine ${own}`)).toBe(keys.workspace);
    expect(seen(`platform ${other}`)).toBe(keys.openai);

    const viaStore = await send(other, 'text_generation', { model: 'stored-chat', prompt: `stored ${other}` });
    expect(result(viaStore)).toMatchObject({ provider: storedProvider, model: 'gpt-4o-mini', key_source: 'platform', priced: false, cost_usd: 0 } as Partial<Result>);
    expect(seen(`stored ${other}`)).toBe(keys.stored);
    await vault.delete(secretPaths.workspace(own, 'openai'));
  });

  it('no key anywhere: a failed provider_not_configured outcome that names where keys go, and the orchestrator keeps serving', async () => {
    const ws = uid('ws');
    const out = await send(ws, 'text_generation', { model: 'keyless-chat', prompt: 'anyone?' });
    expect(out).toMatchObject({ status: 'failed', error: { code: 'provider_not_configured' } });
    expect(out.error!.message).toContain(`no API key for ${keylessProvider}`);
    expect(out.error!.message).toContain(`platform/${keylessProvider}`);
    expect((await fetch(`${orchestrator.url}/readyz`)).status).toBe(200);
    expect((await send(ws, 'text_generation', { prompt: 'still there?' })).status).toBe('succeeded');
  });

  it('budgets: a zero budget from config and a budget set by llm.set_budget refuse with budget_exceeded before any vendor call', async () => {
    const before = openai.count();
    expect(await send(zeroBudgetWs, 'text_generation', { prompt: 'free lunch?' })).toMatchObject({ status: 'failed', error: { code: 'budget_exceeded' } });
    expect(openai.count()).toBe(before);

    const ws = uid('ws');
    const set = await send(ws, 'llm.set_budget', { day_usd: 0.00001, month_usd: 5 });
    expect(set).toMatchObject({ status: 'succeeded', result: { day_usd: 0.00001, month_usd: 5, source: 'command', spent_today_usd: 0 } });
    const first = await send(ws, 'text_generation', { prompt: 'one call within the budget, which it then exceeds' });
    expect(first.status).toBe('succeeded');
    const calls = openai.count();
    const refused = await send(ws, 'embedding', { input: 'over budget now' });
    expect(refused).toMatchObject({ status: 'failed', error: { code: 'budget_exceeded', message: expect.stringContaining('daily') } });
    expect(openai.count()).toBe(calls);
    expect(await send(ws, 'llm.get_budget', {})).toMatchObject({ status: 'succeeded', result: { day_usd: 0.00001, spent_today_usd: result(first).cost_usd } });
    // Raising it lets calls through again.
    await send(ws, 'llm.set_budget', { day_usd: 1 });
    expect((await send(ws, 'embedding', { input: 'room again' })).status).toBe('succeeded');
  });

  it('spend: a call the provider billed counts although a step after it fails (the image cannot be stored): the failed outcome comes with its total on ionflux.state.llm-spend and its usage event, once, and the next call adds to both', async () => {
    const ws = uid('ws');
    const calls = openai.count('/v1/images/generations');
    // The artifact store cannot write: its folder is a file while the command runs.
    const away = `${artifactsDir}.away`;
    await rename(artifactsDir, away);
    await writeFile(artifactsDir, '');
    let failed: Outcome;
    try {
      failed = await send(ws, 'image_generation', { prompt: 'a badge nobody keeps', size: '1024x1024', output: 'reference' });
    } finally {
      await rm(artifactsDir, { force: true });
      await rename(away, artifactsDir);
    }
    expect(failed).toMatchObject({ status: 'failed', error: { message: expect.stringContaining('ENOTDIR') } });
    expect(openai.count('/v1/images/generations')).toBe(calls + 1);
    const billed = DEFAULT_PRICES['openai/dall-e-3']!.per_image as Record<string, number>;
    expect(await spendOf(ws, 1)).toMatchObject({ day: { usd: billed['standard:1024x1024'], calls: 1 }, month: { usd: billed['standard:1024x1024'], calls: 1 } });

    // The user reconciling their provider bill from the usage events sees that call too.
    const usageOf = async (n: number) => Promise.all((await readAll(infra.bus, topics.event('llm', ws, 'usage', 'recorded'), { atLeast: n })).map((u) => infra.codec.decode(u.value!)));
    const lost = await usageOf(1);
    expect(lost).toHaveLength(1);
    expect(JSON.parse(lost[0]!.payload_json)).toMatchObject({ command_id: failed.command_id, task: 'image_generation', provider: 'openai', model: 'dall-e-3', usage: { images: 1 }, cost_usd: billed['standard:1024x1024'], priced: true });
    // Sent again under its id: the same failed outcome, and no second usage event.
    const again = await client.send({ workspace_id: ws, agent_id: 'agent-7', service: 'llm', action: 'image_generation', params: { prompt: 'a badge nobody keeps', size: '1024x1024', output: 'reference' }, command_id: failed.command_id }, { timeoutMs: 60_000 });
    expect(again).toMatchObject({ status: 'failed', event: { event_id: failed.event.event_id } });
    expect(openai.count('/v1/images/generations')).toBe(calls + 1);

    const next = await send(ws, 'text_generation', { prompt: 'and now a word' });
    expect(next.status).toBe('succeeded');
    const total = Math.round((billed['standard:1024x1024']! + result(next).cost_usd) * 1e8) / 1e8;
    expect(await spendOf(ws, 2)).toMatchObject({ day: { usd: total, calls: 2 }, month: { usd: total, calls: 2 } });
    expect(await send(ws, 'llm.get_budget', {})).toMatchObject({ result: { spent_today_usd: total, spent_month_usd: total } });
    // One usage event per billed call, each once: together they come to the spend total.
    const usage = await usageOf(2);
    expect(usage.map((e) => e.correlation_id)).toEqual([failed.command_id, next.command_id]);
    expect(new Set(usage.map((e) => e.event_id)).size).toBe(2);
    expect(usage.reduce((n, e) => n + (JSON.parse(e.payload_json) as { cost_usd: number }).cost_usd, 0)).toBeCloseTo(total, 8);
  });

  it('non-retryable: a content-policy 400 fails at once with the provider reason; a rejected workspace key fails at once as vendor_unauthorized, without fallback', async () => {
    const ws = uid('ws');
    const before = anthropic.count();
    const refused = await send(ws, 'image_generation', { prompt: 'something forbidden' });
    expect(refused).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'vendor_http_400', message: expect.stringContaining('content_policy_violation') } });
    expect(refused.error!.message).toContain('safety system');

    const badWs = uid('ws');
    await vault.put(secretPaths.workspace(badWs, 'openai'), { api_key: keys.bad });
    const denied = await send(badWs, 'text_generation', { model: 'gpt-4o', prompt: 'with a wrong key' });
    expect(denied).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'vendor_unauthorized', message: expect.stringContaining('invalid_api_key') } });
    expect(anthropic.count()).toBe(before);
    await vault.delete(secretPaths.workspace(badWs, 'openai'));
  });

  it('fallback: a 503 moves on to the next provider and cools the failing one down, so later requests skip it until the cooldown ends', async () => {
    const ws = uid('ws');
    openai.script('/v1/chat/completions', [{ status: 503 }]);
    const a = await send(ws, 'text_generation', { model: 'gpt-4o', prompt: 'first' });
    expect(a.status).toBe('succeeded');
    expect(result(a)).toMatchObject({ provider: 'anthropic', model: 'claude-3-haiku-20240307', alias: 'claude-3-haiku', key_source: 'platform' });
    expect(result(a).attempts).toMatchObject([
      { provider: 'openai', model: 'gpt-4o', outcome: 'failed', status: 503, reason: expect.stringContaining('overloaded') },
      { provider: 'anthropic', model: 'claude-3-haiku-20240307', outcome: 'ok' },
    ]);
    expect(lastRequest(anthropic, '/v1/chat/completions').key).toBe(keys.anthropic);
    expect(result(a).cost_usd).toBeCloseTo((result(a).usage.prompt_tokens! / 1000) * 0.00025 + (result(a).usage.completion_tokens! / 1000) * 0.00125, 8);

    const openaiCalls = openai.count('/v1/chat/completions');
    const b = await send(ws, 'text_generation', { model: 'gpt-4o', prompt: 'second' });
    expect(result(b).provider).toBe('anthropic');
    expect(result(b).attempts[0]).toMatchObject({ provider: 'openai', outcome: 'skipped', reason: expect.stringContaining('cooling down') });
    expect(openai.count('/v1/chat/completions')).toBe(openaiCalls);

    await new Promise((r) => setTimeout(r, 3200));
    const c = await send(ws, 'text_generation', { model: 'gpt-4o', prompt: 'third' });
    expect(result(c)).toMatchObject({ provider: 'openai', attempts: [{ provider: 'openai', outcome: 'ok' }] });
  });

  it('fallback: a 429 with retry-after moves on and keeps that key cooled down for as long as the provider asked', async () => {
    const ws = uid('ws');
    openai.script('/v1/chat/completions', [{ status: 429, headers: { 'retry-after': '8' } }]);
    const a = await send(ws, 'text_generation', { model: 'gpt-3.5-turbo', prompt: 'limited' });
    // The 429 was answered before `a`'s outcome came back: its Retry-After ends before `answered + 8 s`.
    const answered = Date.now();
    expect(result(a)).toMatchObject({ provider: 'anthropic', attempts: [{ provider: 'openai', status: 429, reason: expect.stringContaining('rate_limit_exceeded') }, { provider: 'anthropic', outcome: 'ok' }] });
    // Past our 3 s cooldown but well within the provider's 8 s Retry-After (slow cores have seconds to spare): still skipped.
    await new Promise((r) => setTimeout(r, 3300));
    const b = await send(ws, 'text_generation', { model: 'gpt-3.5-turbo', prompt: 'still limited' });
    expect(result(b).attempts[0]).toMatchObject({ provider: 'openai', outcome: 'skipped' });
    await new Promise((r) => setTimeout(r, Math.max(0, answered + 8200 - Date.now())));
    expect(result(await send(ws, 'text_generation', { model: 'gpt-3.5-turbo', prompt: 'free again' })).provider).toBe('openai');
  });

  it('every provider failing retryably (connection refused): the worker retries with backoff, then a failed vendor_unavailable outcome and a dead letter', async () => {
    const ws = uid('ws');
    const started = Date.now();
    const out = await send(ws, 'text_generation', { model: 'deepseek-chat', fallbacks: [], prompt: 'nobody home' });
    expect(out).toMatchObject({ status: 'failed', attempts: 2, error: { code: 'vendor_unavailable', retryable: true } });
    expect(out.error!.message).toMatch(/deepseek deepseek-chat: (connection failed \(ECONNREFUSED\)|skipped \(cooling down)/);
    expect(Date.now() - started).toBeLessThan(20_000);
    const dead = await readAll(infra.bus, topics.deadLetter('llm'), { atLeast: 1 });
    const mine = dead.filter((r) => r.key?.toString() === ws);
    expect(mine).toHaveLength(1);
    expect(mine[0]!.headers[DLQ_HEADERS.errorClass]).toBe('vendor_unavailable');
    expect(JSON.parse(mine[0]!.value!.toString())).toMatchObject({ command_id: out.command_id, action: 'text_generation' });
  });

  it('no key appears in the orchestrator output, outcomes, usage events or dead letters (item 18)', async () => {
    const secrets = Object.values(keys);
    const texts: string[] = [orchestrator.output.join('\n')];
    for (const ws of workspaces) {
      for (const t of [defaultOutcomeTopic('llm', ws), topics.event('llm', ws, 'usage', 'recorded')]) {
        const records = await readAll(infra.bus, t);
        texts.push(...(await Promise.all(records.map(async (r) => JSON.stringify(await infra.codec.decode(r.value!))))));
      }
    }
    const dead = await readAll(infra.bus, topics.deadLetter('llm'));
    texts.push(...dead.map((r) => `${r.value?.toString('latin1')} ${JSON.stringify(r.headers)}`));
    expect(texts.length).toBeGreaterThan(workspaces.length);
    // The output does hold per-call lines (debug) and the provider failures (warn), keys masked.
    expect(orchestrator.output.filter((l) => l.includes('llm call completed')).length).toBeGreaterThan(15);
    expect(orchestrator.output.filter((l) => l.includes('llm provider failed')).length).toBeGreaterThanOrEqual(5);
    const all = texts.join('\n');
    for (const s of secrets) expect(all.includes(s), `a key leaked: ${s.slice(0, 8)}…`).toBe(false);
    // The rejected workspace key did reach the output in the provider's own masked form only.
    expect(all).toContain('Incorrect API key provided: sk-');
  });
});

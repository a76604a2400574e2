import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local stand-in for the OpenAI HTTP API, written from OpenAI's API reference and the openai
 * package's types (openai-node `resources/chat/completions`, `embeddings`, `audio/transcriptions`,
 * `images`; error bodies `{error: {message, type, param, code}}`): POST /v1/chat/completions (text,
 * image content parts, tools, response_format json), /v1/embeddings (float or base64),
 * /v1/audio/transcriptions (multipart; json, verbose_json, text), /v1/images/generations (url or
 * b64_json) and GET /files/<name> for the image URLs it hands out. Bearer keys are checked
 * (401 with OpenAI's body otherwise) and recorded per request; a key out of quota answers every
 * request 429 `insufficient_quota` (OpenAI's error-code guide: "You exceeded your current quota,
 * please check your plan and billing details", the body as OpenAI sends it); answers can be
 * scripted per path (429 with retry-after, 500, 503, any error body, a delay, a dropped connection).
 */
export interface SimRequest {
  path: string;
  /** The bearer key the request carried (null when none). */
  key: string | null;
  model?: string;
  body: Record<string, unknown>;
  at: number;
}

export type Scripted =
  | { status: number; error?: Partial<OpenAIErrorBody['error']>; headers?: Record<string, string>; delayMs?: number }
  | { drop: true };

interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface OpenAISimulator {
  /** Base URL as the SDK wants it: http://127.0.0.1:<port>/v1 */
  url: string;
  origin: string;
  name: string;
  requests: SimRequest[];
  /** Keys accepted as valid; add or remove while running. */
  keys: Set<string>;
  /** Valid keys whose credits or spend limit are used up; add or remove while running. */
  outOfQuota: Set<string>;
  /** Replaces the next answers for a path (`/v1/chat/completions`, ...) or `*` for any path; then normal answers resume. */
  script(path: string, answers: Scripted[]): void;
  /** Requests to a path (all paths when omitted), optionally only those carrying `key`. */
  count(path?: string, key?: string): number;
  close(): Promise<void>;
}

const INSUFFICIENT_QUOTA: OpenAIErrorBody['error'] = {
  message: 'You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.',
  type: 'insufficient_quota',
  param: null,
  code: 'insufficient_quota',
};

const DEFAULT_ERRORS: Record<number, OpenAIErrorBody['error']> = {
  400: { message: "Invalid request.", type: 'invalid_request_error', param: null, code: null },
  429: { message: 'Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s.', type: 'requests', param: null, code: 'rate_limit_exceeded' },
  500: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null },
  502: { message: 'Bad gateway.', type: 'server_error', param: null, code: null },
  503: { message: 'The engine is currently overloaded, please try again later.', type: 'server_error', param: null, code: null },
};

export async function startOpenAISimulator(o: { name?: string; keys?: string[]; delayMs?: number; imageBytes?: number } = {}): Promise<OpenAISimulator> {
  const name = o.name ?? 'openai-sim';
  const keys = new Set(o.keys ?? []);
  const outOfQuota = new Set<string>();
  const requests: SimRequest[] = [];
  const scripts = new Map<string, Scripted[]>();
  const images = new Map<string, Buffer>();
  let origin = '';

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, { error: { ...DEFAULT_ERRORS[500]!, message: `simulator bug: ${(e as Error).message}` } });
    });
  });
  server.keepAliveTimeout = 60_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'GET' && path.startsWith('/files/')) {
      const img = images.get(path.slice('/files/'.length));
      return void (img ? res.writeHead(200, { 'content-type': 'image/png', 'content-length': img.length }).end(img) : send(res, 404, notFound(req)));
    }
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? null;
    const ctype = req.headers['content-type'] ?? '';
    let body: Record<string, unknown> = {};
    let file: File | null = null;
    try {
      if (ctype.startsWith('multipart/form-data')) {
        const form = await new Response(raw, { headers: { 'content-type': ctype } }).formData();
        for (const [k, v] of form) {
          if (typeof v === 'string') body[k] = v;
          else if (k === 'file') file = v;
        }
        if (file) body.file = { name: file.name, type: file.type, bytes: file.size };
      } else if (raw.length) body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    } catch {
      return send(res, 400, { error: { message: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)", type: 'invalid_request_error', param: null, code: null } });
    }
    requests.push({ path, key: auth, model: typeof body.model === 'string' ? body.model : undefined, body, at: Date.now() });

    if (!auth) return send(res, 401, { error: { message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.", type: 'invalid_request_error', param: null, code: null } });
    if (!keys.has(auth)) return send(res, 401, { error: { message: `Incorrect API key provided: ${mask(auth)}. You can find your API key at https://platform.openai.com/account/api-keys.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    if (outOfQuota.has(auth)) return send(res, 429, { error: INSUFFICIENT_QUOTA });
    const next = scripts.get(path)?.shift() ?? scripts.get('*')?.shift();
    if (next && 'drop' in next) return void req.socket.destroy();
    const delay = (next && 'delayMs' in next ? next.delayMs : undefined) ?? o.delayMs;
    if (delay) await new Promise((r) => setTimeout(r, delay));
    if (next && next.status >= 400) return send(res, next.status, { error: { ...(DEFAULT_ERRORS[next.status] ?? DEFAULT_ERRORS[400]!), ...next.error } }, next.headers);

    if (req.method !== 'POST') return send(res, 404, notFound(req));
    switch (path) {
      case '/v1/chat/completions':
        return chat(res, body);
      case '/v1/embeddings':
        return embeddings(res, body);
      case '/v1/audio/transcriptions':
        return transcription(res, body, file);
      case '/v1/images/generations':
        return generate(res, body);
      default:
        return send(res, 404, notFound(req));
    }
  }

  function chat(res: ServerResponse, b: Record<string, unknown>): void {
    if (typeof b.model !== 'string') return invalid(res, 'you must provide a model parameter', null);
    const messages = b.messages as { role: string; content: unknown }[] | undefined;
    if (!Array.isArray(messages) || messages.length === 0) return invalid(res, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", 'messages');
    if (b.stream) return invalid(res, 'streaming is not simulated', 'stream');
    let promptTokens = 0;
    const seen: string[] = [];
    let lastUser = '';
    for (const m of messages) {
      promptTokens += 3;
      if (typeof m.content === 'string') {
        promptTokens += tokens(m.content);
        if (m.role === 'user') lastUser = m.content;
      } else if (Array.isArray(m.content)) {
        for (const part of m.content as { type: string; text?: string; image_url?: { url: string } }[]) {
          if (part.type === 'text') {
            promptTokens += tokens(part.text ?? '');
            if (m.role === 'user') lastUser = part.text ?? '';
          } else if (part.type === 'image_url') {
            if (!part.image_url?.url) return invalid(res, "Invalid 'messages[].content[].image_url'", 'messages');
            promptTokens += 85;
            seen.push(part.image_url.url);
          }
        }
      }
    }
    const tools = b.tools as { function: { name: string } }[] | undefined;
    const choice = b.tool_choice as string | { function: { name: string } } | undefined;
    const format = (b.response_format as { type?: string } | undefined)?.type;
    let content: string | null;
    let finish = 'stop';
    let toolCalls: unknown[] | undefined;
    if (tools?.length && choice !== 'none') {
      const fn = typeof choice === 'object' ? choice.function.name : tools[0]!.function.name;
      toolCalls = [{ id: `call_${randomBytes(12).toString('hex')}`, type: 'function', function: { name: fn, arguments: JSON.stringify({ query: lastUser.slice(0, 100) }) } }];
      content = null;
      finish = 'tool_calls';
    } else if (format === 'json_object' || format === 'json_schema') {
      content = JSON.stringify({ answer: lastUser.slice(0, 200), model: b.model, by: name });
    } else {
      content = seen.length ? `[${name}] ${b.model} saw ${seen.length} image(s): ${seen.map((u) => u.slice(0, 80)).join(', ')}` : `[${name}] ${b.model} heard: ${lastUser.slice(0, 200)}`;
    }
    let completionTokens = content ? tokens(content) : 12;
    const max = typeof b.max_tokens === 'number' ? b.max_tokens : typeof b.max_completion_tokens === 'number' ? b.max_completion_tokens : undefined;
    if (content && max !== undefined && completionTokens > max) {
      content = content.slice(0, max * 4);
      completionTokens = max;
      finish = 'length';
    }
    send(res, 200, {
      id: `chatcmpl-${randomBytes(12).toString('hex')}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: b.model,
      choices: [{ index: 0, message: { role: 'assistant', content, refusal: null, annotations: [], ...(toolCalls ? { tool_calls: toolCalls } : {}) }, logprobs: null, finish_reason: finish }],
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 } },
      service_tier: 'default',
      system_fingerprint: 'fp_sim',
    });
  }

  function embeddings(res: ServerResponse, b: Record<string, unknown>): void {
    if (typeof b.model !== 'string') return invalid(res, 'you must provide a model parameter', null);
    const input = typeof b.input === 'string' ? [b.input] : Array.isArray(b.input) ? (b.input as unknown[]) : null;
    if (!input || input.length === 0 || input.some((x) => typeof x !== 'string' || x === '')) return invalid(res, "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", 'input');
    const dims = typeof b.dimensions === 'number' ? b.dimensions : b.model.includes('large') ? 3072 : 1536;
    const base64 = b.encoding_format === 'base64';
    const data = (input as string[]).map((text, index) => {
      const v = vector(text, dims);
      return { object: 'embedding', index, embedding: base64 ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v) };
    });
    const used = (input as string[]).reduce((n, t) => n + tokens(t), 0);
    send(res, 200, { object: 'list', data, model: b.model, usage: { prompt_tokens: used, total_tokens: used } });
  }

  function transcription(res: ServerResponse, b: Record<string, unknown>, file: File | null): void {
    if (!file) return invalid(res, "Missing required parameter: 'file'.", 'file');
    if (typeof b.model !== 'string') return invalid(res, "Missing required parameter: 'model'.", 'model');
    const ext = /\.([a-z0-9]+)$/i.exec(file.name)?.[1]?.toLowerCase();
    const formats = ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm'];
    if (!ext || !formats.includes(ext)) return invalid(res, `Invalid file format. Supported formats: ${JSON.stringify(formats)}`, 'file');
    void file.arrayBuffer().then((ab) => {
      const bytes = Buffer.from(ab);
      const duration = wavDuration(bytes) ?? bytes.length / 16_000;
      const text = `[${name}] transcript of ${file.name}: ${bytes.length} bytes, ${duration.toFixed(2)} s of audio`;
      const usage = { type: 'duration', seconds: Math.ceil(duration) };
      if (b.response_format === 'text') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(text);
      if (b.response_format === 'verbose_json') {
        return send(res, 200, { task: 'transcribe', language: b.language === 'de' ? 'german' : 'english', duration, text, segments: [{ id: 0, seek: 0, start: 0, end: duration, text, tokens: [50364], temperature: 0, avg_logprob: -0.2, compression_ratio: 1.1, no_speech_prob: 0.01 }], usage });
      }
      send(res, 200, { text, usage });
    });
  }

  function generate(res: ServerResponse, b: Record<string, unknown>): void {
    if (typeof b.prompt !== 'string' || !b.prompt) return invalid(res, "Missing required parameter: 'prompt'.", 'prompt');
    const model = typeof b.model === 'string' ? b.model : 'dall-e-2';
    const n = typeof b.n === 'number' ? b.n : 1;
    if (model === 'dall-e-3' && n !== 1) return invalid(res, 'You must provide n=1 for this model.', 'n');
    const gptImage = model.startsWith('gpt-image');
    if (gptImage && b.response_format) return invalid(res, "Unknown parameter: 'response_format'.", 'response_format');
    if (/forbidden/i.test(b.prompt)) {
      return send(res, 400, { error: { message: 'Your request was rejected as a result of our safety system. Your prompt may contain text that is not allowed by our safety system.', type: 'invalid_request_error', param: null, code: 'content_policy_violation' } });
    }
    const b64 = gptImage || b.response_format === 'b64_json';
    const data = Array.from({ length: n }, () => {
      const png = fakePng(o.imageBytes ?? 2048);
      if (b64) return { b64_json: png.toString('base64'), ...(gptImage ? {} : { revised_prompt: `${b.prompt} (revised)` }) };
      const id = `img-${randomBytes(8).toString('hex')}.png`;
      images.set(id, png);
      return { url: `${origin}/files/${id}`, revised_prompt: `${b.prompt} (revised)` };
    });
    send(res, 200, { created: Math.floor(Date.now() / 1000), data, ...(gptImage ? { usage: { input_tokens: tokens(b.prompt), output_tokens: 1056, total_tokens: tokens(b.prompt) + 1056, input_tokens_details: { text_tokens: tokens(b.prompt), image_tokens: 0 } }, quality: 'medium', size: '1024x1024' } : {}) });
  }

  const invalid = (res: ServerResponse, message: string, param: string | null) => send(res, 400, { error: { message, type: 'invalid_request_error', param, code: null } });

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/v1`,
    origin,
    name,
    requests,
    keys,
    outOfQuota,
    script: (path, answers) => void scripts.set(path, [...answers]),
    count: (path, key) => requests.filter((r) => (!path || r.path === path) && (!key || r.key === key)).length,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-request-id': `req_${randomBytes(8).toString('hex')}`, 'openai-processing-ms': '1', ...headers }).end(text);
}

const notFound = (req: IncomingMessage): OpenAIErrorBody => ({ error: { message: `Invalid URL (${req.method} ${req.url})`, type: 'invalid_request_error', param: null, code: null } });

/** How OpenAI shows a rejected key: a few characters at each end. */
const mask = (key: string) => (key.length <= 8 ? '*'.repeat(key.length) : `${key.slice(0, 3)}${'*'.repeat(Math.max(4, key.length - 7))}${key.slice(-4)}`);

/** About 4 characters per token, as OpenAI's rule of thumb. */
const tokens = (s: string) => Math.max(1, Math.ceil(s.length / 4));

/** A unit vector derived from the text, so the same text always embeds the same. */
function vector(text: string, dims: number): Float32Array {
  const v = new Float32Array(dims);
  let seed = createHash('sha256').update(text).digest();
  for (let i = 0; i < dims; i++) {
    if (i % 8 === 0 && i > 0) seed = createHash('sha256').update(seed).digest();
    v[i] = seed.readInt32LE((i % 8) * 4) / 2 ** 31;
  }
  const norm = Math.hypot(...v) || 1;
  for (let i = 0; i < dims; i++) v[i] = v[i]! / norm;
  return v;
}

function wavDuration(b: Buffer): number | undefined {
  if (b.length < 44 || b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') return undefined;
  const byteRate = b.readUInt32LE(28);
  return byteRate ? (b.length - 44) / byteRate : undefined;
}

/** A real 1x1 PNG, padded after IEND to `size` bytes (readers stop at IEND). */
function fakePng(size: number): Buffer {
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5b3d9f10000000049454e44ae426082', 'hex');
  return size > png.length ? Buffer.concat([png, randomBytes(size - png.length)]) : png;
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import OpenAI, { APIConnectionError, APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAISimulator, type OpenAISimulator } from '../../tests/simulators/openai.ts';
import { classifyProviderError } from '../../services/llm-orchestrator/connector/provider-errors.ts';
import { createLeanFetch, type FetchLike } from './lean-fetch.ts';

describe('lean fetch', () => {
  let server: Server;
  let base: string;
  const seen: { method?: string; url?: string; headers: IncomingMessage['headers']; body: string }[] = [];
  let release: () => void = () => undefined;
  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
    '/json': (_req, res) => {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.setHeader('x-request-id', 'req_1');
      res.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true}');
    },
    '/empty': (_req, res) => res.writeHead(204).end(),
    '/gzip': (_req, res) => res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync('{"zipped":1}')),
    '/moved': (_req, res) => res.writeHead(307, { location: '/json' }).end(),
    '/slow': () => undefined,
    '/events': (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
      release = () => res.end('data: 2\n\n');
    },
  };
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body });
        routes[req.url ?? '']?.(req, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });

  const fallbacks: string[] = [];
  const fallback: FetchLike = (input, init) => {
    fallbacks.push(input instanceof Request ? `Request ${input.url}` : String(input));
    return fetch(input, init);
  };
  const lean = createLeanFetch({ fallback });

  it('sends method, headers and body, and answers a standard Response with every header', async () => {
    const res = await lean(`${base}/json`, { method: 'post', headers: new Headers({ authorization: 'Bearer k', 'content-type': 'application/json' }), body: '{"q":1}' });
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/json', body: '{"q":1}', headers: { authorization: 'Bearer k', 'content-type': 'application/json' } });
    expect(seen.at(-1)!.headers['accept-encoding']).toBeUndefined();
    expect(res).toBeInstanceOf(Response);
    expect({ status: res.status, ok: res.ok, id: res.headers.get('x-request-id'), cookies: res.headers.getSetCookie() }).toEqual({ status: 201, ok: true, id: 'req_1', cookies: ['a=1', 'b=2'] });
    expect(await res.json()).toEqual({ ok: true });
    expect(fallbacks).toEqual([]);
  });

  it('gives a string body without a content type the one fetch gives it', async () => {
    await (await lean(`${base}/json`, { method: 'POST', body: 'hi' })).text();
    expect(seen.at(-1)!.headers['content-type']).toBe('text/plain;charset=UTF-8');
  });

  it('answers 204 with no body, and decodes a gzip answer as fetch does', async () => {
    const empty = await lean(`${base}/empty`);
    expect([empty.status, empty.body]).toEqual([204, null]);
    expect(await (await lean(`${base}/gzip`)).json()).toEqual({ zipped: 1 });
  });

  it('hands redirects, non-byte bodies and Request objects to the fallback', async () => {
    fallbacks.length = 0;
    const moved = await lean(`${base}/moved`);
    expect([moved.status, await moved.json()]).toEqual([201, { ok: true }]);
    const form = new FormData();
    form.append('file', new Blob(['abc']), 'a.txt');
    await (await lean(`${base}/json`, { method: 'POST', body: form })).text();
    expect(seen.at(-1)!.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    await (await lean(new Request(`${base}/json`))).text();
    expect(fallbacks).toEqual([`${base}/moved`, `${base}/json`, `Request ${base}/json`]);
  });

  it('passes an event stream on as it arrives', async () => {
    const res = await lean(`${base}/events`);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('data: 1\n\n');
    release();
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
    expect(rest).toBe('data: 2\n\n');
  });

  it('rejects with an AbortError when the signal fires, and with the socket error when nothing listens', async () => {
    const ac = new AbortController();
    const pending = lean(`${base}/slow`, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await expect(lean(`http://127.0.0.1:${port}/x`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  describe('under the openai package, against the OpenAI-API simulator', () => {
    let sim: OpenAISimulator;
    beforeAll(async () => void (sim = await startOpenAISimulator({ keys: ['sk-good'] })));
    afterAll(() => sim.close());
    const client = (key: string, baseURL = sim.url) => new OpenAI({ apiKey: key, baseURL, maxRetries: 0, fetch: lean, logLevel: 'off' });
    const ask = (c: OpenAI) => c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 });

    it('completes a chat and reads the provider errors the chain classifies', async () => {
      const done = await ask(client('sk-good'));
      expect(done.choices[0]!.message.content).toBeTruthy();
      expect(sim.requests.at(-1)).toMatchObject({ path: '/v1/chat/completions', key: 'sk-good', model: 'gpt-4o-mini' });

      const denied = await ask(client('sk-bad')).catch((e: unknown) => e);
      expect(denied).toBeInstanceOf(APIError);
      expect(classifyProviderError(denied)).toMatchObject({ status: 401, retryable: false });

      sim.script('/v1/chat/completions', [{ status: 429, headers: { 'retry-after': '2' } }]);
      expect(classifyProviderError(await ask(client('sk-good')).catch((e: unknown) => e))).toMatchObject({ status: 429, retryable: true, retryAfterMs: 2000 });

      const nobody = await ask(client('sk-good', 'http://127.0.0.1:9/v1')).catch((e: unknown) => e);
      expect(nobody).toBeInstanceOf(APIConnectionError);
      expect(classifyProviderError(nobody)).toMatchObject({ status: 0, retryable: true, reason: expect.stringContaining('ECONNREFUSED') });
    });
  });
});

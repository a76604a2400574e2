import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configureOutbound } from '../../shared/net/outbound.ts';
import { isTrustedUrl, resolveAttachments } from './attachments.ts';
import { emailDispatcherEnv } from './env.ts';

const DEFAULT_PREFIXES = [emailDispatcherEnv.shape.EMAIL_TRUSTED_ATTACHMENT_PREFIXES.parse(undefined)];
const options = (trustedPrefixes: string[]) => ({ maxBytes: 1024, trustedPrefixes, allowPrivate: false, signal: new AbortController().signal });
const fetchOne = (url: string, trustedPrefixes: string[]) => resolveAttachments([{ filename: 'f.bin', url }], options(trustedPrefixes));
const refusal = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string }) => e.code);

describe('trusted attachment prefixes', () => {
  let server: Server;
  let port: number;
  const seen: string[] = [];
  beforeAll(async () => {
    configureOutbound([]); // nothing allow-listed, whatever the environment says
    server = createServer((req, res) => {
      seen.push(req.url!);
      res.setHeader('content-type', 'image/png');
      res.end('png');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("defaults to the LLM orchestrator's artifacts route on its ops port", () => {
    expect(DEFAULT_PREFIXES).toEqual(['http://127.0.0.1:8091/artifacts/']);
  });

  it('refuses ops routes of the default prefix origin and .. tricks with attachment_url_forbidden (loopback, through the outbound policy)', async () => {
    for (const url of [
      'http://127.0.0.1:8091/metrics',
      'http://127.0.0.1:8091/readyz',
      'http://127.0.0.1:8091/artifacts/../metrics',
      'http://127.0.0.1:8091/artifacts/%2e%2e/metrics',
      'http://127.0.0.1:8091/artifacts/..%2fmetrics',
      'http://127.0.0.1:8091/artifacts%2f..%2fmetrics',
      'http://127.0.0.1:8091/artifacts',
      'http://127.0.0.1:8091/artifactsx/a.png',
      'http://127.1:8091/metrics',
    ]) {
      expect(await refusal(fetchOne(url, DEFAULT_PREFIXES)), url).toBe('attachment_url_forbidden');
    }
  });

  it('fetches an artifact under the prefix despite loopback; the same origin outside it is refused and never requested', async () => {
    const prefixes = [`http://127.0.0.1:${port}/artifacts/`];
    const [got] = await fetchOne(`http://127.0.0.1:${port}/artifacts/ab12.png?ws=w&exp=1&sig=s`, prefixes);
    expect(got).toMatchObject({ filename: 'f.bin', contentType: 'image/png', content: Buffer.from('png') });
    for (const path of ['/metrics', '/artifacts/../metrics', '/artifacts/./../readyz']) {
      expect(await refusal(fetchOne(`http://127.0.0.1:${port}${path}`, prefixes)), path).toBe('attachment_url_forbidden');
    }
    expect(seen).toEqual(['/artifacts/ab12.png?ws=w&exp=1&sig=s']);
  });

  it('isTrustedUrl compares parsed URLs: origin, then a plain path below the prefix folder', () => {
    const p = ['http://127.0.0.1:8091/artifacts'];
    expect(isTrustedUrl('http://127.0.0.1:8091/artifacts/a.png', p)?.href).toBe('http://127.0.0.1:8091/artifacts/a.png');
    expect(isTrustedUrl('http://127.1:8091/artifacts/./a.png', p)?.href).toBe('http://127.0.0.1:8091/artifacts/a.png');
    expect(isTrustedUrl('http://127.0.0.1:80/artifacts/a.png', ['http://127.0.0.1/artifacts/'])?.href).toBe('http://127.0.0.1/artifacts/a.png');
    for (const url of ['https://127.0.0.1:8091/artifacts/a.png', 'http://127.0.0.1:8092/artifacts/a.png', 'http://u:p@127.0.0.1:8091/artifacts/a.png', 'http://127.0.0.1:8091/artifacts/', 'http://127.0.0.1:8091/artifacts/a%2f..%2f..%2fmetrics', 'not a url']) {
      expect(isTrustedUrl(url, p), url).toBeNull();
    }
    expect(isTrustedUrl('http://127.0.0.1:8091/artifacts/a.png', ['', 'not a url'])).toBeNull();
  });
});

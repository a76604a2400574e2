import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllowlist } from './allowlist.ts';
import { createOutboundFetch, fetchFollowing, ForbiddenDestination, readCapped, type LookupAll } from './outbound.ts';

describe('outbound fetch policy', () => {
  let server: Server;
  let port: number;
  const seen: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(`${req.headers.host} ${req.url}`);
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const refused = async (p: Promise<unknown>) => {
    const e = await p.then(() => null, (err: unknown) => err);
    expect(e).toBeInstanceOf(ForbiddenDestination);
    expect(e).toMatchObject({ code: 'forbidden_destination', retryable: false });
    return (e as Error).message;
  };

  it('refuses loopback without the allow-list, in every spelling the URL parser accepts', async () => {
    const strict = createOutboundFetch();
    const before = seen.length;
    for (const host of ['127.0.0.1', '2130706433', '0x7f000001', '0177.0.0.1', '127.1', '[::1]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '0', 'localhost']) {
      expect(await refused(strict(`http://${host}:${port}/x`))).toMatch(/allow it with OUTBOUND_ALLOWLIST/);
    }
    expect(await refused(strict(`http://169.254.169.254/latest/meta-data/`))).toMatch(/link-local/);
    expect(seen.length).toBe(before);
  });

  it('refuses a host name that resolves to a private address, and one with any private answer', async () => {
    const lookup: LookupAll = async (host) => (host === 'mixed.test' ? [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.5', family: 4 }] : [{ address: '192.168.1.20', family: 4 }]);
    const f = createOutboundFetch({ lookup });
    expect(await refused(f('http://intranet.test/'))).toMatch(/intranet\.test \(192\.168\.1\.20\): private/);
    expect(await refused(f('https://mixed.test/'))).toMatch(/10\.0\.0\.5/);
  });

  it('lets allow-listed addresses, ports and names through', async () => {
    const byIp = createOutboundFetch({ allow: parseAllowlist('127.0.0.1') });
    expect(await (await byIp(`http://127.0.0.1:${port}/ip`)).text()).toBe('ok');
    expect(await (await byIp(`http://localhost:${port}/name-resolving-to-ip`)).text()).toBe('ok');
    const byPort = createOutboundFetch({ allow: parseAllowlist(`127.0.0.1:${port + 1}`) });
    await refused(byPort(`http://127.0.0.1:${port}/other-port`));
    const byName = createOutboundFetch({ allow: parseAllowlist('localhost'), lookup: async () => [{ address: '127.0.0.1', family: 4 }] });
    expect((await byName(`http://localhost:${port}/by-name`)).status).toBe(200);
    await refused(byName(`http://127.0.0.1:${port}/not-by-name`));
    expect(seen.slice(-3)).toEqual([`127.0.0.1:${port} /ip`, `localhost:${port} /name-resolving-to-ip`, `localhost:${port} /by-name`]);
  });

  it('connects to the address it checked: a name answering differently later (DNS rebinding) is resolved once per connection', async () => {
    let calls = 0;
    // First answer public (and unreachable here), any later one loopback: only the first is used.
    const rebinding: LookupAll = async () => (calls++ === 0 ? [{ address: '198.51.99.1', family: 4 }] : [{ address: '127.0.0.1', family: 4 }]);
    const f = createOutboundFetch({ lookup: rebinding, connectTimeoutMs: 300 });
    const before = seen.length;
    const err = await f(`http://rebind.test:${port}/`).then(() => null, (e: unknown) => e);
    expect(err).not.toBeNull();
    expect(calls).toBe(1);
    expect(seen.length).toBe(before);
    // The next connection resolves anew and is checked anew: now refused.
    await refused(f(`http://rebind.test:${port}/again`));
  });
});

describe('fetchFollowing and readCapped', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      const path = req.url ?? '/';
      if (path.startsWith('/hop/')) {
        const n = Number(path.slice(5));
        res.writeHead(302, { location: n > 0 ? `/hop/${n - 1}` : '/data/10' }).end();
      } else if (path === '/to-metadata') res.writeHead(301, { location: 'http://169.254.169.254/latest/' }).end();
      else if (path.startsWith('/data/')) res.end(Buffer.alloc(Number(path.slice(6)), 1));
      else if (path.startsWith('/stream/')) {
        // Chunked, no content-length: only counting while reading can stop it.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        for (let i = 0; i < Number(path.slice(8)); i++) res.write(Buffer.alloc(100, 2));
        res.end();
      } else if (path === '/busy') res.writeHead(503).end('busy');
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const o = { signal: new AbortController().signal, fetch: createOutboundFetch({ allow: parseAllowlist('127.0.0.1') }), what: 'the file', codes: { invalid: 'bad_url', unavailable: 'file_unavailable' } };
  const tooLarge = () => new Error('too large');

  it('follows up to 3 redirects, each checked by the policy, and refuses a 4th', async () => {
    const { res, url } = await fetchFollowing(`${base}/hop/2`, o);
    expect(url.pathname).toBe('/data/10');
    expect(await readCapped(res, 10, tooLarge)).toEqual(Buffer.alloc(10, 1));
    await expect(fetchFollowing(`${base}/hop/3`, o)).rejects.toMatchObject({ code: 'file_unavailable', message: 'too many redirects fetching the file', retryable: false });
    await expect(fetchFollowing(`${base}/to-metadata`, o)).rejects.toBeInstanceOf(ForbiddenDestination);
  });

  it('refuses other schemes, and says which statuses are worth retrying', async () => {
    await expect(fetchFollowing('file:///etc/passwd', o)).rejects.toMatchObject({ code: 'bad_url' });
    await expect(fetchFollowing(`${base}/busy`, o)).rejects.toMatchObject({ code: 'file_unavailable', message: 'fetching the file answered 503', retryable: true });
    await expect(fetchFollowing(`${base}/missing`, o)).rejects.toMatchObject({ code: 'file_unavailable', retryable: false });
  });

  it('refuses a body over the limit by its declared length, and a chunked one while reading', async () => {
    await expect(readCapped((await fetchFollowing(`${base}/data/11`, o)).res, 10, tooLarge)).rejects.toThrow('too large');
    await expect(readCapped((await fetchFollowing(`${base}/stream/50`, o)).res, 1000, tooLarge)).rejects.toThrow('too large');
    expect((await readCapped((await fetchFollowing(`${base}/stream/10`, o)).res, 1000, tooLarge)).length).toBe(1000);
  });
});

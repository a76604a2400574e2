import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { ActionContext } from '../../../shared/connectors/types.ts';
import { createLogger } from '../../../shared/logger.ts';
import { parseAllowlist } from '../../../shared/net/allowlist.ts';
import { configureOutbound } from '../../../shared/net/outbound.ts';
import { connector } from './webhook.ts';

const LIMIT = 32 * 1024 * 1024;

describe('webhook.post', () => {
  // A receiver that answers 200 and then streams its body without end (as fast as it is read).
  let written = 0;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const more = () => {
      for (let ok = true; ok && !res.destroyed; written += chunk.length) ok = res.write(chunk);
      if (!res.destroyed) res.once('drain', more);
    };
    more();
  });
  afterAll(() => new Promise<void>((r) => (server.close(() => r()), server.closeAllConnections())));

  it('does not read a receiver\'s answer: one streaming without end is not held in memory', async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    configureOutbound(parseAllowlist('127.0.0.1'));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    // Stops the call once the receiver sent LIMIT bytes: only a handler that read that far gets there.
    const stop = new AbortController();
    const watch = setInterval(() => written >= LIMIT && stop.abort(), 5);
    const ctx = {
      params: { url, event_type: 'test', payload: { n: 1 } },
      workspaceId: 'ws-a',
      agentId: 'agent',
      idempotencyKey: 'cmd-1',
      credentials: { signing_secret: `whsec_${Buffer.alloc(24, 1).toString('base64')}` },
      settings: { urls: [url], preapproved: [] },
      logger: createLogger({ service: 'test', level: 'silent' }),
      signal: stop.signal,
      resumed: false,
      emit: () => undefined,
    } as unknown as ActionContext;
    try {
      const result = await connector.handlers.post!(ctx);
      expect(result).toMatchObject({ status: 200, webhook_id: 'cmd-1' });
      expect(written).toBeLessThan(LIMIT);
    } finally {
      clearInterval(watch);
    }
  });
});

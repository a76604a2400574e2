/**
 * The HTTP side of bench/ingest's two floors (bare.ts, bare-inbox.ts): node:http; the Shopify
 * HMAC of the raw body checked (401 otherwise); the raw body, keyed by the order id
 * (admin_graphql_api_id), appended to `topic` with acks=all by the given idempotent producer; 200
 * once Kafka acknowledged, 503 when it did not. Records that arrive while a request is in flight
 * go together in the next one (kafkajs sends one request at a time per idempotent producer, and
 * one awaited send per record is about ten times slower). `headers`: what the record carries of
 * the request's headers (none by default).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Message, Producer } from 'kafkajs';

export function floorEdge(o: { producer: Producer; topic: string; secret: string; headers?: (req: IncomingMessage) => Record<string, string> }): Server {
  let queue: { message: Message; done: (ok: boolean) => void }[] = [];
  let sending = false;
  const flush = async (): Promise<void> => {
    if (sending) return;
    sending = true;
    while (queue.length) {
      const batch = queue;
      queue = [];
      const ok = await o.producer.send({ topic: o.topic, acks: -1, messages: batch.map((b) => b.message) }).then(() => true, () => false);
      for (const b of batch) b.done(ok);
    }
    sending = false;
  };
  return createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/webhooks/shopify') return void res.writeHead(404).end();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const given = Buffer.from(String(req.headers['x-shopify-hmac-sha256'] ?? ''), 'base64');
      const expected = createHmac('sha256', o.secret).update(body).digest();
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return void res.writeHead(401).end();
      let key: string;
      try {
        key = String((JSON.parse(body.toString('utf8')) as { admin_graphql_api_id: string }).admin_graphql_api_id);
      } catch {
        return void res.writeHead(400).end();
      }
      queue.push({ message: { key, value: body, ...(o.headers ? { headers: o.headers(req) } : {}) }, done: (ok) => res.writeHead(ok ? 200 : 503).end() });
      void flush();
    });
  });
}

import type { IncomingMessage } from 'node:http';
import express, { type Express, type Request, type Response } from 'express';
import { mountOpsRoutes, type ReadinessCheck } from '../../shared/http.ts';
import type { Registry } from 'prom-client';
import { ingest, inFlightCount, type IngestDeps, type IngestResponse } from './ingest.ts';
import type { Outcome } from './metrics.ts';
import { vendors, verifyChallenge } from './vendors/index.ts';
import type { RawDelivery, VendorModule } from './vendors/types.ts';

export interface AppOptions {
  deps: IngestDeps;
  metrics: Registry;
  checks: Record<string, ReadinessCheck>;
  bodyLimit: number;
  maxInFlight: number;
  whatsappVerifyToken?: string;
}

/**
 * Routes (see README "Webhooks"): POST /webhooks/shopify, /webhooks/tiktok,
 * /webhooks/email/sendgrid[/<account>], GET+POST /webhooks/whatsapp, POST /webhooks/generic/<endpoint-id>.
 * Bodies are read as raw bytes (what vendors sign); no JSON parser runs before verification.
 */
export function createApp(o: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  mountOpsRoutes(app, { metrics: o.metrics, checks: o.checks });

  const route = (vendor: VendorModule, param?: string) => async (req: Request, res: Response) => {
    const count = (outcome: Outcome) => o.deps.metrics.requests.inc({ vendor: vendor.source, outcome });
    if (inFlightCount() >= o.maxInFlight) {
      count('overloaded');
      return reply(res, { status: 503, body: { error: 'overloaded' } }, { 'retry-after': '1' });
    }
    const body = await readBody(req, o.bodyLimit);
    if (body === 'too_large') {
      count('too_large');
      return reply(res, { status: 413, body: { error: 'payload_too_large', limit_bytes: o.bodyLimit } }, { connection: 'close' });
    }
    if (body === 'aborted') return;
    const delivery: RawDelivery = { rawBody: body, headers: lowerHeaders(req), pathParam: param ? String(req.params[param] ?? '') || undefined : undefined, receivedAt: new Date() };
    let result: IngestResponse;
    try {
      result = await ingest(o.deps, vendor, delivery);
    } catch (e) {
      o.deps.logger.error({ vendor: vendor.source, err: e }, 'ingest failed unexpectedly');
      count('unavailable');
      result = { status: 503, body: { error: 'unavailable' } };
    }
    reply(res, result);
  };

  app.post('/webhooks/shopify', route(vendor('shopify')));
  app.post('/webhooks/tiktok', route(vendor('tiktok')));
  app.post('/webhooks/email/sendgrid', route(vendor('sendgrid')));
  app.post('/webhooks/email/sendgrid/:account', route(vendor('sendgrid'), 'account'));
  app.post('/webhooks/whatsapp', route(vendor('whatsapp')));
  app.post('/webhooks/generic/:endpointId', route(vendor('generic'), 'endpointId'));
  // Meta's subscription check: echo hub.challenge when hub.verify_token matches ours.
  app.get('/webhooks/whatsapp', (req, res) => {
    const challenge = o.whatsappVerifyToken ? verifyChallenge(req.query as Record<string, unknown>, o.whatsappVerifyToken) : null;
    if (challenge === null) return void res.status(403).json({ error: 'verification_failed' });
    res.type('text/plain').send(challenge);
  });
  app.use((_req, res) => void res.status(404).json({ error: 'not_found' }));
  return app;
}

function vendor(name: string): VendorModule {
  const m = vendors[name];
  if (!m) throw new Error(`no vendor module ${name}`);
  return m;
}

function reply(res: Response, r: IngestResponse, headers: Record<string, string> = {}): void {
  res.status(r.status).set(headers).json(r.body);
}

function lowerHeaders(req: IncomingMessage): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(req.headers)) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** The raw body, or 'too_large' as soon as the declared or received length passes the limit. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too_large' | 'aborted'> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume(); // drain without keeping it
    return Promise.resolve('too_large');
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        chunks.length = 0;
        req.resume();
        return resolve('too_large');
      }
      chunks.push(c);
    });
    req.on('end', () => !done && ((done = true), resolve(Buffer.concat(chunks, size))));
    req.on('aborted', () => !done && ((done = true), resolve('aborted')));
    req.on('error', () => !done && ((done = true), resolve('aborted')));
  });
}

import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express from 'express';
import { admission, readBody } from './admission.ts';
import { accept, precheck, type EdgeDeps, type IngestResponse } from './edge.ts';
import type { Outcome } from './metrics.ts';
import { vendors, verifyChallenge } from './vendors/index.ts';
import type { RawDelivery, VendorModule } from './vendors/types.ts';

export interface AppOptions {
  deps: EdgeDeps;
  bodyLimit: number;
  /** Requests counted from arrival until answered. */
  maxInFlight: number;
  /** Body bytes held at once across every request. */
  maxBufferedBytes: number;
  whatsappVerifyToken?: string;
}

/**
 * The POST routes, one per vendor module (its `route`): `/webhooks/<path>`, with `/<param>` when the
 * route has one. Matched before express sees the request, case-insensitively and with or without
 * one trailing slash, as express would.
 */
function routeOf(m: VendorModule): RegExp {
  const base = `^/webhooks/${m.route.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`;
  const param = { none: '', optional: '(?:/([^/]+))?', required: '/([^/]+)' }[m.route.param];
  return new RegExp(`${base}${param}/?$`, 'i');
}

/**
 * The public listener (see docs/webhooks.md): POST /webhooks/shopify, /webhooks/tiktok,
 * /webhooks/email/sendgrid[/<account>], GET+POST /webhooks/whatsapp, POST /webhooks/generic/<endpoint-id>;
 * nothing else (ops routes live on their own port, main.ts). Bodies are read as raw bytes (what
 * vendors sign); no JSON parser runs before verification. The webhook POSTs are the hot path:
 * they are served straight off node:http (express's own per-request work measured at about 3x
 * node:http's), every spelling of them included; express serves the WhatsApp challenge and 404s.
 *
 * What a request may cost before it is known to be signed: it counts against the in-flight limit
 * from arrival; an unknown endpoint or account, missing signature headers or a declared length
 * over the limit are answered before the body is read; and its body bytes count against one
 * budget shared by all requests (admission.ts: the longest-reading requests make room for new
 * ones), so slow or unsigned floods are bounded by that budget rather than by connections x body
 * limit, and cannot keep a signed delivery from being read.
 */
export function createApp(o: AppOptions): RequestListener & { load(): { inFlight: number; bufferedBytes: number } } {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const gate = admission({ maxInFlight: o.maxInFlight, maxBufferedBytes: o.maxBufferedBytes });

  // No closure is made per request here: under tsx every arrow function a request creates costs a
  // defineProperty of its name as well (about 2% of the edge thread in make bench-ingest).
  const count = (vendor: VendorModule, outcome: Outcome) => o.deps.metrics.requests.inc({ vendor: vendor.source, outcome });
  const route = (vendor: VendorModule) => async (req: IncomingMessage, res: ServerResponse, pathParam: string | undefined) => {
    const ticket = gate.enter(res);
    if (!ticket) {
      count(vendor, 'overloaded');
      return reply(res, { status: 503, body: { error: 'overloaded' } }, { 'retry-after': '1', connection: 'close' });
    }
    if (Number(req.headers['content-length'] ?? 0) > o.bodyLimit) {
      count(vendor, 'too_large');
      return reply(res, { status: 413, body: { error: 'payload_too_large', limit_bytes: o.bodyLimit } }, { connection: 'close' });
    }
    const headers = lowerHeaders(req);
    const early = precheck(o.deps, vendor, headers, pathParam);
    // Answered without reading the body; closing the connection drops whatever is still coming.
    if (early) return reply(res, early, { connection: 'close' });
    const body = await readBody(req, o.bodyLimit, ticket);
    if (body === 'too_large') {
      count(vendor, 'too_large');
      return reply(res, { status: 413, body: { error: 'payload_too_large', limit_bytes: o.bodyLimit } }, { connection: 'close' });
    }
    if (body === 'over_budget') {
      count(vendor, 'overloaded');
      return reply(res, { status: 503, body: { error: 'overloaded' } }, { 'retry-after': '1', connection: 'close' });
    }
    if (body === 'aborted') return;
    const delivery: RawDelivery = { rawBody: body, headers, pathParam, receivedAt: new Date() };
    let result: IngestResponse;
    try {
      result = await accept(o.deps, vendor, delivery);
    } catch (e) {
      o.deps.logger.error({ vendor: vendor.source, err: e }, 'ingest failed unexpectedly');
      count(vendor, 'unavailable');
      result = { status: 503, body: { error: 'unavailable' } };
    }
    reply(res, result);
  };

  // Meta's subscription check: echo hub.challenge when hub.verify_token matches ours.
  app.get('/webhooks/whatsapp', (req, res) => {
    const challenge = o.whatsappVerifyToken ? verifyChallenge(req.query as Record<string, unknown>, o.whatsappVerifyToken) : null;
    if (challenge === null) return void res.status(403).json({ error: 'verification_failed' });
    res.type('text/plain').send(challenge);
  });
  app.use((_req, res) => void res.status(404).json({ error: 'not_found' }));

  const fast = Object.values(vendors).map((m) => ({ path: routeOf(m), handle: route(m) }));
  const listener: RequestListener = (req, res) => {
    if (req.method === 'POST' && req.url) {
      const q = req.url.indexOf('?');
      const path = q === -1 ? req.url : req.url.slice(0, q);
      for (const r of fast) {
        const m = r.path.exec(path);
        if (!m) continue;
        let param: string | undefined;
        try {
          param = m[1] === undefined ? undefined : decodeURIComponent(m[1]);
        } catch {
          return void reply(res, { status: 400, body: { error: 'malformed_path' } });
        }
        return void r.handle(req, res, param || undefined);
      }
    }
    app(req, res);
  };
  return Object.assign(listener, { load: gate.load });
}

const JSON_TYPE = 'application/json; charset=utf-8';

function reply(res: ServerResponse, r: IngestResponse, headers?: Record<string, string>): void {
  const body = JSON.stringify(r.body);
  // Headers as one flat list: node:http takes it as is, where an object is walked and checked again.
  const list: string[] = [];
  if (headers) for (const k in headers) list.push(k, headers[k]!);
  list.push('content-type', JSON_TYPE, 'content-length', String(Buffer.byteLength(body)));
  res.writeHead(r.status, list);
  res.end(body);
}

/**
 * node:http's headers (names lower-cased already) with every value one string. Only set-cookie
 * arrives as a list of values; without one, node's object is used as it is instead of copied.
 */
function lowerHeaders(req: IncomingMessage): Record<string, string | undefined> {
  const h = req.headers;
  let copy: Record<string, string | undefined> | undefined;
  for (const k in h) {
    const v = h[k];
    if (!Array.isArray(v)) continue;
    copy ??= { ...(h as Record<string, string | undefined>) };
    copy[k] = v.join(', ');
  }
  return copy ?? (h as Record<string, string | undefined>);
}

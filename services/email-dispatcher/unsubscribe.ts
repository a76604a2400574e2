import { createHmac, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import express, { type Express } from 'express';
import type { KafkaTable } from '../../shared/bus/table/table.ts';
import { isWorkspaceId } from '../../shared/ids.ts';
import type { Logger } from '../../shared/logger.ts';
import { forbiddenRange } from '../../shared/net/addresses.ts';
import { suppressionKey, type Suppression } from './suppressions.ts';

/** Signed one-click unsubscribe links (RFC 8058): only links the dispatcher issued unsubscribe anyone. */
export interface UnsubscribeLinks {
  url(workspaceId: string, address: string): string;
  verify(token: string): { workspaceId: string; address: string } | null;
}

/**
 * Why recipients could not use unsubscribe links on `baseUrl`, or null: a loopback or private
 * address (the default without EMAIL_PUBLIC_URL is the bound address, 127.0.0.1) is unreachable
 * from their mail clients, and RFC 8058 one-click unsubscribe requires an HTTPS URI.
 */
export function unsubscribeBaseProblem(baseUrl: string): string | null {
  const url = new URL(baseUrl);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const unreachable = host === 'localhost' || host.endsWith('.localhost') || (isIP(host) !== 0 && forbiddenRange(host) !== null);
  if (unreachable) return `unsubscribe links point at ${url.origin}, which recipients cannot reach; set EMAIL_PUBLIC_URL to the dispatcher's public HTTPS address`;
  if (url.protocol !== 'https:') return `unsubscribe links use ${url.origin}; RFC 8058 one-click unsubscribe (List-Unsubscribe-Post) needs an HTTPS EMAIL_PUBLIC_URL`;
  return null;
}

export function unsubscribeLinks(key: Buffer, baseUrl: string): UnsubscribeLinks {
  const k = createHmac('sha256', key).update('email-unsubscribe-v1').digest();
  const mac = (body: string) => createHmac('sha256', k).update(body).digest('base64url').slice(0, 32);
  return {
    url(workspaceId, address) {
      const body = Buffer.from(`${workspaceId}\n${address.toLowerCase()}`).toString('base64url');
      return `${baseUrl.replace(/\/$/, '')}/v1/emails/unsubscribe?t=${body}.${mac(body)}`;
    },
    verify(token) {
      const [body, sig] = token.split('.');
      if (!body || !sig) return null;
      // Compared as bytes: a sig of 32 characters may be more bytes (multibyte UTF-8), and
      // timingSafeEqual throws on buffers of different lengths.
      const want = Buffer.from(mac(body));
      const got = Buffer.from(sig);
      if (got.length !== want.length || !timingSafeEqual(want, got)) return null;
      const [workspaceId, address] = Buffer.from(body, 'base64url').toString('utf8').split('\n');
      return isWorkspaceId(workspaceId) && address?.includes('@') ? { workspaceId, address } : null;
    },
  };
}

const page = (title: string, body: string) => `<!doctype html><meta charset="utf-8"><title>${title}</title><body style="font-family:sans-serif;max-width:32em;margin:3em auto">${body}</body>`;

/**
 * GET shows a confirmation button (mail scanners follow links; a GET must not unsubscribe);
 * POST records the suppression, whether from that button or a mail client's one-click POST with
 * `List-Unsubscribe=One-Click`.
 */
export function mountUnsubscribe(app: Express, o: { links: UnsubscribeLinks; table: KafkaTable<Suppression>; logger: Logger }): void {
  const token = (q: unknown) => (typeof q === 'string' && q.length < 2000 ? o.links.verify(q) : null);
  app.get('/v1/emails/unsubscribe', (req, res) => {
    const who = token(req.query.t);
    if (!who) return void res.status(400).type('html').send(page('Invalid link', '<p>This unsubscribe link is not valid.</p>'));
    res.type('html').send(page('Unsubscribe', `<form method="post"><p>Stop emails to this address?</p><button type="submit" name="List-Unsubscribe" value="One-Click">Unsubscribe</button></form>`));
  });
  app.post('/v1/emails/unsubscribe', express.urlencoded({ extended: false, limit: '4kb' }), async (req, res) => {
    const who = token(req.query.t);
    if (!who) return void res.status(400).json({ error: 'invalid_link' });
    try {
      const key = suppressionKey(who.workspaceId, who.address);
      if (!o.table.get(key)) await o.table.set(key, { reason: 'unsubscribed', at: Date.now(), source: 'unsubscribe_link' });
      o.logger.info({ workspace: who.workspaceId }, 'address unsubscribed by link');
      res.status(200).type(req.accepts(['html', 'json']) === 'json' ? 'json' : 'html').send(req.accepts(['html', 'json']) === 'json' ? { status: 'unsubscribed' } : page('Unsubscribed', '<p>You will not receive these emails any more.</p>'));
    } catch (e) {
      o.logger.warn({ err: e }, 'unsubscribe not recorded');
      res.status(503).json({ error: 'unavailable', message: 'try again in a moment' });
    }
  });
}

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local stand-in for SendGrid's v3 Web API, written from its reference (docs.sendgrid.com
 * api-reference/mail-send, .../how-to-use-the-sendgrid-v3-api/errors, /rate-limits, /responses):
 * - POST /v3/mail/send: Bearer API key (401 `{"errors":[{"field":null,"message":"The provided
 *   authorization grant is invalid, expired, or revoked"}]}` otherwise); the body is checked as
 *   the reference says (personalizations 1..1000 each with a `to`, at most 1000 recipients in all,
 *   no address twice across one personalization's to/cc/bcc, whatever its case, `from.email`, a
 *   subject, `content` with text/plain before text/html, string custom_args, string substitutions
 *   of which at most 100 and 10,000 bytes per personalization, keys and values counted, as the
 *   mail/send reference limits them; the message for it is the one SendGrid's errors page lists
 *   under personalizations.substitutions) and answered 400
 *   `{"errors":[{"message","field","help"}]}` naming every problem, in SendGrid's words where its
 *   answers are on record (the duplicate as sendgrid/sendgrid-csharp#995 quotes it); success is 202
 *   with an empty body and `X-Message-Id`. Every answer carries X-RateLimit-Limit/-Remaining/-Reset;
 *   past `rateLimit` requests in the window: 429 `{"errors":[{"field":null,"message":"too many requests"}]}`.
 *   An account out of credits (`credits`: recipients it may still send, unlimited unless set) is
 *   answered 401 `{"errors":[{"message":"Maximum credits exceeded","field":null,"help":null}]}`,
 *   the body SendGrid sends then (sendgrid/sendgrid-nodejs#1032), whatever the key.
 * - GET /v3/scopes: `{"scopes":[...]}` for a valid key (the healthcheck).
 * Answers can be scripted (a status, a dropped connection, or as usual) for the next requests.
 */
export interface SentMail {
  key: string | null;
  body: Record<string, unknown>;
  messageId: string;
}

/** One scripted answer: a status (and body), a dropped connection, or `pass`: answered as usual. */
export type SendgridScript = { status: number; headers?: Record<string, string>; body?: unknown } | { drop: true } | { pass: true };

export interface SendgridSimulator {
  url: string;
  keys: Set<string>;
  /** Accepted sends (202), in order. */
  sent: SentMail[];
  /** Every request to /v3/mail/send, accepted or not, with its status. */
  requests: { status: number; personalizations: number }[];
  /** Recipients the account may still send (each accepted to, cc and bcc spends one); undefined: no limit. */
  credits: number | undefined;
  script(answers: SendgridScript[]): void;
  close(): Promise<void>;
}

/**
 * What each recipient of an accepted body reads: SendGrid replaces every occurrence of each key of
 * a personalization's `substitutions`, as an exact string, in the subject (its own, else the
 * message's) and the content; anything not a key stays as written.
 */
export function renderedFor(body: Record<string, unknown>): { to: string; subject: string; content: Record<string, string> }[] {
  const apply = (text: string, subs: Record<string, string>) => Object.entries(subs).reduce((t, [k, v]) => t.split(k).join(v), text);
  return (body.personalizations as { to: { email: string }[]; subject?: string; substitutions?: Record<string, string> }[]).map((p) => ({
    to: p.to[0]!.email,
    subject: apply(p.subject ?? String(body.subject ?? ''), p.substitutions ?? {}),
    content: Object.fromEntries((body.content as { type: string; value: string }[]).map((c) => [c.type, apply(c.value, p.substitutions ?? {})])),
  }));
}

const HELP = 'http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html';
const error = (message: string, field: string | null, anchor?: string) => ({ message, field, help: anchor ? `${HELP}#message.${anchor}` : null });

/** Problems with a mail/send body, each as SendGrid words it. */
export function validateMailSend(b: Record<string, unknown>): ReturnType<typeof error>[] {
  const errors: ReturnType<typeof error>[] = [];
  const ps = b.personalizations as Record<string, unknown>[] | undefined;
  if (!Array.isArray(ps) || ps.length === 0) errors.push(error('The personalizations field is required and must have at least one personalization.', 'personalizations', 'personalizations'));
  else {
    if (ps.length > 1000) errors.push(error(`The personalization block is limited to 1000 personalizations per API request. You have provided ${ps.length} personalizations. Please consider splitting this into multiple requests and resending your request.`, 'personalizations', 'personalizations'));
    let recipients = 0;
    ps.forEach((p, i) => {
      const to = p.to as { email?: string }[] | undefined;
      if (!Array.isArray(to) || to.length === 0) errors.push(error('The to array is required for all personalization objects, and must have at least one email object with a valid email address.', `personalizations.${i}.to`, 'personalizations.to'));
      let duplicate: string | undefined;
      const seen = new Set<string>();
      for (const list of ['to', 'cc', 'bcc']) for (const r of (p[list] as { email?: string }[] | undefined) ?? []) {
        recipients++;
        if (typeof r.email !== 'string' || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(r.email)) errors.push(error('Does not contain a valid address.', `personalizations.${i}.${list}.email`, 'personalizations.to'));
        else if (seen.has(r.email.toLowerCase())) duplicate ??= `We found the first duplicate instance of [${r.email}] in the personalizations.${i}.${list} field.`;
        else seen.add(r.email.toLowerCase());
      }
      if (duplicate) errors.push(error(`Each email address in the personalization block should be unique between to, cc, and bcc. ${duplicate}`, `personalizations.${i}`, 'recipient-errors'));
      for (const [k, v] of Object.entries((p.custom_args as Record<string, unknown>) ?? {})) if (typeof v !== 'string') errors.push(error(`Custom args values must be strings (${k}).`, `personalizations.${i}.custom_args`, 'personalizations.custom_args'));
      const subs = Object.entries((p.substitutions as Record<string, unknown>) ?? {});
      if (subs.some(([, v]) => typeof v !== 'string')) errors.push(error('The substitution values must be an object of key/value pairs, where the values are all strings.', `personalizations.${i}.substitutions`, 'personalizations.substitutions'));
      else if (subs.length > 100 || subs.reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v as string), 0) > 10_000) errors.push(error('You are limited to 10,000 substitutions.', `personalizations.${i}.substitutions`, 'personalizations.substitutions'));
      if (!b.subject && !p.subject) errors.push(error('The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.', 'subject', 'subject'));
    });
    if (recipients > 1000) errors.push(error('There is a limit of 1000 total recipients (to + cc + bcc) per request.', 'personalizations', 'personalizations'));
  }
  const from = b.from as { email?: string } | undefined;
  if (!from || typeof from.email !== 'string') errors.push(error('The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.', 'from', 'from'));
  const content = b.content as { type?: string; value?: string }[] | undefined;
  if (!Array.isArray(content) || content.length === 0) errors.push(error('Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block.', 'content', 'content'));
  else {
    content.forEach((c, i) => typeof c.value !== 'string' || c.value === '' ? errors.push(error('The content value must be a string at least one character in length.', `content.${i}.value`, 'content.value')) : undefined);
    const types = content.map((c) => c.type);
    if (types.includes('text/plain') && types.indexOf('text/plain') !== 0) errors.push(error('If present, text/plain content must be first, followed by any other content.', 'content', 'content.type'));
  }
  return errors;
}

/** Recipients of a mail/send body, to, cc and bcc of every personalization. */
const recipientsOf = (b: Record<string, unknown>) =>
  ((b.personalizations as Record<string, unknown[] | undefined>[] | undefined) ?? []).reduce((n, p) => n + (p.to?.length ?? 0) + (p.cc?.length ?? 0) + (p.bcc?.length ?? 0), 0);

export async function startSendgridSimulator(o: { keys?: string[]; rateLimit?: number; windowMs?: number; credits?: number } = {}): Promise<SendgridSimulator> {
  const keys = new Set(o.keys ?? []);
  const sent: SentMail[] = [];
  const requests: SendgridSimulator['requests'] = [];
  const scripted: SendgridScript[] = [];
  const limit = o.rateLimit ?? 600;
  const windowMs = o.windowMs ?? 60_000;
  let windowStart = Date.now();
  let used = 0;

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  };
  const read = (req: IncomingMessage) => new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
  });

  const server: Server = createServer(async (req, res) => {
    const body = await read(req);
    const key = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? null;
    if (!key || !keys.has(key)) return json(res, 401, { errors: [{ field: null, message: 'The provided authorization grant is invalid, expired, or revoked' }] });
    if (Date.now() - windowStart >= windowMs) {
      windowStart = Date.now();
      used = 0;
    }
    const rate = () => ({ 'x-ratelimit-limit': String(limit), 'x-ratelimit-remaining': String(Math.max(0, limit - used)), 'x-ratelimit-reset': String(Math.ceil((windowStart + windowMs) / 1000)) });
    if (req.method === 'GET' && req.url === '/v3/scopes') return json(res, 200, { scopes: ['mail.send', 'user.profile.read'] }, rate());
    if (req.method !== 'POST' || req.url !== '/v3/mail/send') return json(res, 404, { errors: [{ field: null, message: 'resource not found' }] });
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    } catch {
      return json(res, 400, { errors: [error('Bad Request', null)] });
    }
    const personalizations = Array.isArray(parsed.personalizations) ? parsed.personalizations.length : 0;
    const next = scripted.shift();
    if (next && 'drop' in next) return void req.socket.destroy();
    if (next && 'status' in next) {
      requests.push({ status: next.status, personalizations });
      return json(res, next.status, next.body ?? { errors: [{ field: null, message: next.status === 429 ? 'too many requests' : 'internal error' }] }, { ...rate(), ...next.headers });
    }
    used++;
    if (used > limit) {
      requests.push({ status: 429, personalizations });
      return json(res, 429, { errors: [{ field: null, message: 'too many requests' }] }, { ...rate(), 'x-ratelimit-remaining': '0' });
    }
    const errors = validateMailSend(parsed);
    if (errors.length) {
      requests.push({ status: 400, personalizations });
      return json(res, 400, { errors }, rate());
    }
    if (sim.credits !== undefined && recipientsOf(parsed) > sim.credits) {
      requests.push({ status: 401, personalizations });
      return json(res, 401, { errors: [{ message: 'Maximum credits exceeded', field: null, help: null }] }, rate());
    }
    if (sim.credits !== undefined) sim.credits -= recipientsOf(parsed);
    const messageId = randomBytes(16).toString('base64url').slice(0, 22);
    sent.push({ key, body: parsed, messageId });
    requests.push({ status: 202, personalizations });
    res.writeHead(202, { ...rate(), 'x-message-id': messageId }).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const sim: SendgridSimulator = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    keys,
    sent,
    requests,
    credits: o.credits,
    script: (answers) => void scripted.push(...answers),
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
  return sim;
}

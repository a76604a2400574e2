import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendInput } from '../../../shared/connectors/catalog/email.ts';
import type { ActionContext } from '../../../shared/connectors/types.ts';
import { HandedOver } from '../../../shared/errors.ts';
import { createLogger } from '../../../shared/logger.ts';
import { startSendgridSimulator, type SendgridSimulator } from '../../../tests/simulators/sendgrid.ts';
import type { EmailDeps } from '../deps.ts';
import { memoryLedger } from '../ledger.ts';
import { sendgridProvider } from '../providers/sendgrid.ts';
import type { OutgoingMessage, Provider } from '../providers/types.ts';
import { suppressionKey } from '../suppressions.ts';
import { Throttle } from '../throttle.ts';
import { send } from './send.ts';

const KEY = 'SG.unit-test-key';
const suppressedAddresses = ['gone@x.io', 'left@x.io'];

/** The send handler on in-memory deps: the given provider, `gone@` and `left@` suppressed (unsubscribed). */
function deps(provider: Provider, credential: string): EmailDeps {
  const suppressed = new Set(suppressedAddresses.map((a) => suppressionKey('ws1', a)));
  return {
    ledger: memoryLedger(),
    suppressions: { get: (k: string) => (suppressed.has(k) ? { reason: 'unsubscribed', at: 1, source: 'unsubscribe_link' } : undefined) },
    providerThrottle: new Throttle(1000, 1000),
    workspaceThrottle: new Throttle(1000, 1000),
    platformCredential: async () => credential,
    attachments: { maxBytes: 1024, trustedPrefixes: [], allowPrivate: false },
    waitBudgetMs: 0,
    logger: createLogger({ service: 'test', level: 'silent' }),
    providerFor: () => provider,
  } as unknown as EmailDeps;
}

const run = (d: EmailDeps, credential: string, params: Record<string, unknown>, commandId: string, ctx: Partial<ActionContext> = {}) =>
  send(d)({
    params: sendInput.parse({ subject: 'Hi', text: 'Hello', ...params }),
    workspaceId: 'ws1',
    idempotencyKey: commandId,
    credentials: { provider: 'sendgrid', credential, from: 'news@shop.test' },
    signal: new AbortController().signal,
    ...ctx,
  } as unknown as ActionContext) as Promise<{ status: string; suppressed: { email: string }[]; accepted: string[] }>;

describe('send through SendGrid (its simulator)', () => {
  let sim: SendgridSimulator;
  let d: EmailDeps;
  beforeAll(async () => {
    sim = await startSendgridSimulator({ keys: [KEY] });
    d = deps(sendgridProvider(KEY, { baseUrl: sim.url, timeoutMs: 5000 }), KEY);
  });
  afterAll(() => sim.close());
  const lastPersonalizations = () => sim.sent.at(-1)!.body.personalizations;

  it('every to suppressed, cc and bcc left: the cc become the to, the bcc stay hidden', async () => {
    const out = await run(d, KEY, { to: ['gone@x.io'], cc: [{ email: 'cc@x.io', name: 'C' }], bcc: ['hidden@x.io'] }, 'c1');
    expect(out).toMatchObject({ status: 'sent', suppressed: [{ email: 'gone@x.io' }], accepted: ['cc@x.io', 'hidden@x.io'] });
    expect(lastPersonalizations()).toEqual([{ to: [{ email: 'cc@x.io', name: 'C' }], bcc: [{ email: 'hidden@x.io' }], custom_args: expect.any(Object) }]);
  });

  it('only bcc left: a copy for each, addressed to it alone, so none sees another', async () => {
    const out = await run(d, KEY, { to: ['gone@x.io', 'left@x.io'], bcc: ['b1@x.io', 'b2@x.io'] }, 'c2');
    expect(out).toMatchObject({ status: 'sent', accepted: ['b1@x.io', 'b2@x.io'] });
    expect(lastPersonalizations()).toEqual([{ to: [{ email: 'b1@x.io' }], custom_args: expect.any(Object) }, { to: [{ email: 'b2@x.io' }], custom_args: expect.any(Object) }]);
  });

  it('names an address once, where it first appears, whatever its case', async () => {
    const out = await run(d, KEY, { to: ['Ann@x.io'], cc: ['ann@x.io', 'bo@x.io', 'BO@x.io'], bcc: ['ANN@X.IO', 'bo@x.io', 'cy@x.io'] }, 'c3');
    expect(out).toMatchObject({ status: 'sent', accepted: ['ann@x.io', 'bo@x.io', 'cy@x.io'] });
    expect(lastPersonalizations()).toEqual([{ to: [{ email: 'Ann@x.io' }], cc: [{ email: 'bo@x.io' }], bcc: [{ email: 'cy@x.io' }], custom_args: expect.any(Object) }]);
    // A suppressed address named twice is reported once.
    expect((await run(d, KEY, { to: ['gone@x.io'], cc: ['Gone@x.io'] }, 'c4')).suppressed).toEqual([{ email: 'gone@x.io', reason: 'unsubscribed' }]);
  });

  it('stops waiting for the account at the handover and never sends: past the rebalance timeout the next owner does', async () => {
    const provider = sendgridProvider(KEY, { baseUrl: sim.url, timeoutMs: 5000 });
    const held = deps(provider, KEY);
    // The account is held (a 429's Retry-After, or the platform account's shared rate limit).
    held.providerThrottle.block(provider.account, Date.now() + 5000);
    const handover = new AbortController();
    const before = sim.requests.length;
    const sent = run(held, KEY, { to: ['wait@x.io'] }, 'c-handover', { handover: handover.signal });
    setTimeout(() => handover.abort(new HandedOver('the group is rebalancing')), 50);
    await expect(sent).rejects.toBeInstanceOf(HandedOver);
    expect(sim.requests.length).toBe(before);
    expect((held.ledger as ReturnType<typeof memoryLedger>).entries.size).toBe(0);
  }, 15_000);

  it("fails provider_unauthorized when the platform's key is refused, leaving the workspace's connection alone; the workspace's own key refused is vendor_unauthorized", async () => {
    const revoked = 'SG.revoked-key';
    const provider = sendgridProvider(revoked, { baseUrl: sim.url, timeoutMs: 5000 });
    // The platform's account: the worker marks needs_reauth only on vendor_unauthorized.
    await expect(run(deps(provider, revoked), revoked, { to: ['a@x.io'] }, 'c-platform-401')).rejects.toMatchObject({ code: 'provider_unauthorized', retryable: false });
    const own = { ...deps(provider, revoked), platformCredential: async () => KEY };
    await expect(run(own, revoked, { to: ['a@x.io'] }, 'c-own-401')).rejects.toMatchObject({ code: 'vendor_unauthorized' });
  });

  it('an account out of credits (SendGrid answers 401 "Maximum credits exceeded") fails the send, not the credentials', async () => {
    const poor = await startSendgridSimulator({ keys: [KEY], credits: 0 });
    try {
      const own = { ...deps(sendgridProvider(KEY, { baseUrl: poor.url, timeoutMs: 5000 }), KEY), platformCredential: async () => 'SG.platform' };
      await expect(run(own, KEY, { to: ['a@x.io'] }, 'c-credits')).rejects.toMatchObject({ code: 'sendgrid_credits_exceeded', retryable: false });
      expect(poor.requests).toEqual([{ status: 401, personalizations: 1 }]);
    } finally {
      await poor.close();
    }
  });

  it('a resumed send reports what it sent, though an address was suppressed since or prepare would fail now, and sends nothing', async () => {
    const resumed = deps(sendgridProvider(KEY, { baseUrl: sim.url, timeoutMs: 5000 }), KEY);
    const ledger = resumed.ledger as ReturnType<typeof memoryLedger>;
    // The first run sent to gone@ (who unsubscribed afterwards) and crashed before its outcome.
    await ledger.write([['ws1:c-resumed:message', { state: 'sent', at: 1, message_id: 'SG-1', accepted: ['gone@x.io'], rejected: [] }]]);
    const before = sim.requests.length;
    expect(await run(resumed, KEY, { to: ['gone@x.io'] }, 'c-resumed', { resumed: true })).toEqual({ status: 'sent', provider: 'sendgrid', message_id: 'SG-1', accepted: ['gone@x.io'], rejected: [], suppressed: [] });
    // An attachment no longer reachable (prepare would fail): the record still answers.
    expect(await run(resumed, KEY, { to: ['gone@x.io'], attachments: [{ filename: 'a.pdf', url: 'http://127.0.0.1:9/gone.pdf' }] }, 'c-resumed', { resumed: true })).toMatchObject({ status: 'sent', message_id: 'SG-1' });
    expect(sim.requests.length).toBe(before);
  });

  it("refuses a duplicate with SendGrid's 400 body, as it is on record", async () => {
    const res = await fetch(`${sim.url}/v3/mail/send`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ personalizations: [{ to: [{ email: 'a@x.io' }], cc: [{ email: 'b@x.io' }], bcc: [{ email: 'A@x.io' }, { email: 'b@x.io' }] }], from: { email: 'news@shop.test' }, subject: 's', content: [{ type: 'text/plain', value: 't' }] }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      errors: [{ message: 'Each email address in the personalization block should be unique between to, cc, and bcc. We found the first duplicate instance of [A@x.io] in the personalizations.0.bcc field.', field: 'personalizations.0', help: 'http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.recipient-errors' }],
    });
  });
});

describe('send over SMTP', () => {
  it('every to suppressed: cc and bcc are handed over as they are with an empty to (nodemailer then writes no To header)', async () => {
    const handed: OutgoingMessage[] = [];
    const smtp: Provider = { name: 'smtp', account: 'smtp:1', send: async (m) => (handed.push(m), { ok: true, messageId: m.messageId, accepted: ['cc@x.io', 'hidden@x.io'], rejected: [] }) };
    const url = 'smtp://user:pass@mail.example.com:587';
    const out = await run(deps(smtp, url), url, { to: ['gone@x.io'], cc: ['cc@x.io', 'CC@x.io'], bcc: ['hidden@x.io', 'gone@x.io'] }, 'c5');
    expect(out).toMatchObject({ status: 'sent', suppressed: [{ email: 'gone@x.io' }] });
    expect(handed.map((m) => [m.to, m.cc, m.bcc])).toEqual([[[], ['cc@x.io'], ['hidden@x.io']]]);
  });
});

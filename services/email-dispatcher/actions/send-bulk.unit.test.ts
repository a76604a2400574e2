import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendBulkInput } from '../../../shared/connectors/catalog/email.ts';
import type { ActionContext } from '../../../shared/connectors/types.ts';
import { createLogger } from '../../../shared/logger.ts';
import type { EmailDeps } from '../deps.ts';
import { renderedFor, startSendgridSimulator, type SendgridSimulator } from '../../../tests/simulators/sendgrid.ts';
import { memoryLedger } from '../ledger.ts';
import { sendgridProvider } from '../providers/sendgrid.ts';
import type { Provider, SendResult } from '../providers/types.ts';
import { Throttle } from '../throttle.ts';
import { pool, sendBulk } from './send-bulk.ts';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('send_bulk pool', () => {
  it('starts nothing once a unit failed, and throws only after the units in flight ended', async () => {
    const started: number[] = [];
    const ended: number[] = [];
    const run = pool([1, 2, 3, 4, 5, 6], 2, [new AbortController().signal], async (n) => {
      started.push(n);
      await tick(n === 2 ? 5 : 30);
      if (n === 2) throw new Error('401 from the provider');
      ended.push(n);
    });
    await expect(run).rejects.toThrow('401 from the provider');
    expect(started).toEqual([1, 2]); // 3 would have started when 2 ended
    expect(ended).toEqual([1]); // 1 was in flight: it ended before the error came out
  });

  it('starts nothing once the action is out of time, or handed over to another worker', async () => {
    const ac = new AbortController();
    const started: number[] = [];
    const run = pool([1, 2, 3, 4], 1, [new AbortController().signal, ac.signal], async (n) => {
      started.push(n);
      if (n === 2) ac.abort(new Error('action timed out'));
      await tick(5);
    });
    await expect(run).rejects.toThrow('action timed out');
    expect(started).toEqual([1, 2]);
  });
});

/** send_bulk over a scripted SMTP-like provider (one message per recipient), one unit at a time. */
function bulkDeps(answers: SendResult[]) {
  const handed: string[] = [];
  const provider: Provider = { name: 'smtp', account: 'smtp:1', send: async (m) => (handed.push(String(m.to[0])), answers.shift()!) };
  const d = {
    ledger: memoryLedger(),
    suppressions: { get: () => undefined },
    links: { url: (_ws: string, email: string) => `https://hub.test/u?e=${email}` },
    providerThrottle: new Throttle(1000, 1000),
    workspaceThrottle: new Throttle(1000, 1000),
    platformCredential: async () => 'smtp://platform@mail.test',
    attachments: { maxBytes: 1024, trustedPrefixes: [], allowPrivate: true },
    sendgridBatchSize: 500,
    concurrency: 1,
    waitBudgetMs: 0,
    outageMs: 30_000,
    logger: createLogger({ service: 'test', level: 'silent' }),
    providerFor: () => provider,
  } as unknown as EmailDeps;
  return { d, handed };
}

const bulk = (d: EmailDeps, emails: string[], commandId = 'bulk-1') =>
  sendBulk(d)({
    params: sendBulkInput.parse({ template: { id: 't', subject: 'Hi {{name}}', text: 'Hello' }, recipients: emails.map((email) => ({ email })) }),
    workspaceId: 'ws1',
    idempotencyKey: commandId,
    credentials: { provider: 'smtp', credential: 'smtp://own@mail.test', from: 'news@shop.test' },
    signal: new AbortController().signal,
  } as unknown as ActionContext) as Promise<{ sent: { email: string }[]; failed: { email: string; code: string }[]; unknown: unknown[] }>;

describe('send_bulk stopped part-way', () => {
  const sent = (id: string): SendResult => ({ ok: true, messageId: id, accepted: [], rejected: [] });
  const refused: SendResult = { ok: false, kind: 'unauthorized', code: 'smtp_auth_failed', message: '535 invalid login' };

  it('lists who was sent and, failed with the reason it stopped, everyone else (a retry under another id mails nobody twice)', async () => {
    const { d, handed } = bulkDeps([sent('<1>'), sent('<2>'), refused]);
    const out = await bulk(d, ['r1@x.io', 'r2@x.io', 'r3@x.io', 'r4@x.io']);
    expect(handed).toEqual(['r1@x.io', 'r2@x.io', 'r3@x.io']);
    expect(out.sent.map((s) => s.email)).toEqual(['r1@x.io', 'r2@x.io']);
    // Never handed over (the refused credentials took nothing): safe to send again once reconnected.
    expect(out.failed).toEqual([{ email: 'r3@x.io', code: 'vendor_unauthorized', message: expect.stringContaining('535'), retry_safe: true }, { email: 'r4@x.io', code: 'vendor_unauthorized', message: expect.stringContaining('535'), retry_safe: true }]);
    expect(out.unknown).toEqual([]);
  });

  it("a recipient whose `sent` record could not be written is unknown (it may have gone out), not failed", async () => {
    const { d } = bulkDeps([sent('<1>'), sent('<2>')]);
    const ledger = d.ledger as ReturnType<typeof memoryLedger>;
    const write = ledger.write;
    ledger.write = async (entries) => {
      if (entries.some(([k, u]) => k.endsWith(':r2@x.io') && u.state === 'sent')) throw new Error('the broker is unreachable');
      return write(entries);
    };
    const out = await bulk(d, ['r1@x.io', 'r2@x.io', 'r3@x.io']);
    expect(out).toMatchObject({ sent: [{ email: 'r1@x.io' }], unknown: [{ email: 'r2@x.io', retry_safe: false }], failed: [{ email: 'r3@x.io', code: 'Error', message: 'the broker is unreachable', retry_safe: true }] });
  });

  it('says per failed recipient whether a re-send is safe: refused for good (5xx) not, refused for now (4xx) or never tried yes; unknown never', async () => {
    const r550: SendResult = { ok: false, kind: 'rejected', code: 'smtp_550', message: '550 5.1.1 mailbox unavailable' };
    const r451: SendResult = { ok: false, kind: 'not_sent', code: 'smtp_451', message: '451 4.3.0 try again later', recipient: true };
    const broke: SendResult = { ok: false, kind: 'ambiguous', code: 'smtp_esocket', message: 'connection reset after DATA' };
    const { d } = bulkDeps([sent('<1>'), r550, r451, broke]);
    const out = (await bulk(d, ['r1@x.io', 'r2@x.io', 'r3@x.io', 'r4@x.io'])) as BulkResult & { failed: { retry_safe: boolean }[]; unknown: { email: string; retry_safe: boolean }[] };
    expect(out.sent.map((s) => s.email)).toEqual(['r1@x.io']);
    expect(out.failed).toEqual([
      { email: 'r2@x.io', code: 'smtp_550', message: '550 5.1.1 mailbox unavailable', retry_safe: false },
      { email: 'r3@x.io', code: 'provider_unavailable', message: 'not sent, safe to send again: 451 4.3.0 try again later', retry_safe: true },
    ]);
    expect(out.unknown).toEqual([{ email: 'r4@x.io', message_id: expect.any(String), retry_safe: false }]);
  });

  it('with nobody sent, fails the command as before (a refused workspace credential marks its connection)', async () => {
    const { d } = bulkDeps([refused]);
    await expect(bulk(d, ['r1@x.io', 'r2@x.io'])).rejects.toMatchObject({ code: 'vendor_unauthorized' });
  });
});

/** send_bulk to an SMTP-like provider whose answer each call decides (recipient, and how often that one was tried). */
function relayDeps(answer: (to: string, tries: number) => SendResult, o: { concurrency: number; waitBudgetMs: number; outageMs: number }) {
  const tries = new Map<string, number>();
  const calls: string[] = [];
  const provider: Provider = {
    name: 'smtp',
    account: 'smtp:relay',
    send: async (m) => {
      const to = String(m.to[0]);
      calls.push(to);
      tries.set(to, (tries.get(to) ?? 0) + 1);
      await tick(2);
      return answer(to, tries.get(to)!);
    },
  };
  const { d } = bulkDeps([]);
  return { d: { ...d, ...o, providerFor: () => provider } as EmailDeps, calls };
}

type BulkResult = { sent: { email: string }[]; failed: { email: string; code: string; message: string }[]; unknown: unknown[] };

describe('send_bulk to a provider that refuses every attempt (docs/email.md, "A provider that refuses everything")', () => {
  const taken = (to: string): SendResult => ({ ok: true, messageId: `<${to}>`, accepted: [to], rejected: [] });
  const r421: SendResult = { ok: false, kind: 'not_sent', code: 'smtp_421', message: 'Mail command failed: 421 4.3.2 Service not available', closing: true };
  const emails = Array.from({ length: 20 }, (_, i) => `r${i}@x.io`);

  it('stops once the relay took nothing for the outage window, listing everyone not sent as failed, safe to send again; the re-send mails each once', async () => {
    let refusing = true;
    // A 5 s budget per unit: before, 20 units two at a time waited 10 x 5 s.
    const { d, calls } = relayDeps((to) => (refusing ? r421 : taken(to)), { concurrency: 2, waitBudgetMs: 5000, outageMs: 300 });
    const out = (await bulk(d, emails)) as BulkResult;
    expect(out.sent).toEqual([]);
    expect(out.unknown).toEqual([]);
    expect(out.failed.map((f) => f.email)).toEqual(emails);
    for (const f of out.failed) expect(f).toMatchObject({ code: 'provider_unavailable', message: expect.stringMatching(/^not sent, safe to send again: .*421 4\.3\.2/), retry_safe: true });
    // The first units' attempts only: nobody after them reached the relay.
    expect(new Set(calls)).toEqual(new Set(emails.slice(0, 2)));
    // Nothing recorded as taken: the ledger says pending (tried) or nothing (never tried).
    const ledger = d.ledger as ReturnType<typeof memoryLedger>;
    expect([...ledger.entries.values()].map((u) => u.state).filter((s) => s !== 'pending')).toEqual([]);

    // The relay is back: a re-send of the failed (under a new id) mails each once.
    refusing = false;
    calls.length = 0;
    const again = (await bulk(d, out.failed.map((f) => f.email), 'bulk-2')) as BulkResult;
    expect(again.sent.map((s) => s.email)).toEqual(emails);
    expect(calls.sort()).toEqual([...emails].sort());
  });

  it('a relay refusing after some were taken: those are listed sent, the rest failed', async () => {
    let taken3 = 0;
    const { d, calls } = relayDeps((to) => (taken3 < 3 ? (taken3++, taken(to)) : r421), { concurrency: 2, waitBudgetMs: 5000, outageMs: 300 });
    const out = (await bulk(d, emails)) as BulkResult;
    expect(out.sent).toHaveLength(3);
    expect(out.failed).toHaveLength(17);
    expect(out.failed.every((f) => f.code === 'provider_unavailable')).toBe(true);
    // Those listed sent are exactly those the relay took, each once.
    const sent = out.sent.map((s) => s.email);
    expect(calls.filter((c) => sent.includes(c))).toEqual(sent);
  });

  it('one transient 421 is retried as before, and the bulk sends to everyone', async () => {
    const { d } = relayDeps((to, tries) => (to === 'r3@x.io' && tries === 1 ? r421 : taken(to)), { concurrency: 2, waitBudgetMs: 5000, outageMs: 300 });
    const out = (await bulk(d, emails)) as BulkResult;
    expect(out.sent.map((s) => s.email)).toEqual(emails);
    expect(out.failed).toEqual([]);
  });

  it('one recipient deferred (4xx to RCPT TO) among others taken does not stop the bulk: it alone is failed once its budget is spent', async () => {
    const deferred: SendResult = { ok: false, kind: 'not_sent', code: 'smtp_451', message: "Can't send mail - all recipients were rejected: 451 4.7.1 greylisted", recipient: true };
    const { d, calls } = relayDeps((to) => (to === 'r0@x.io' ? deferred : taken(to)), { concurrency: 2, waitBudgetMs: 1200, outageMs: 100 });
    const out = (await bulk(d, emails)) as BulkResult;
    expect(out.sent.map((s) => s.email)).toEqual(emails.slice(1));
    expect(out.failed).toEqual([{ email: 'r0@x.io', code: 'provider_unavailable', message: expect.stringContaining('451 4.7.1'), retry_safe: true }]);
    expect(calls.filter((c) => c === 'r0@x.io').length).toBeGreaterThan(1);
  });
});

describe('send_bulk over SendGrid: what each recipient reads', () => {
  let sim: SendgridSimulator;
  beforeAll(async () => (sim = await startSendgridSimulator({ keys: ['SG.k'] })));
  afterAll(() => sim.close());

  it('no tag as written: spaced tags are substituted in subject and text, and a field a recipient lacks is empty (as over SMTP)', async () => {
    const { d } = bulkDeps([]);
    const provider = sendgridProvider('SG.k', { baseUrl: sim.url, timeoutMs: 5000 });
    const sg = { ...d, providerFor: () => provider } as EmailDeps;
    const template = { id: 't', subject: 'Hi {{ name }}', text: 'Dear {{first_name}}, code {{ code }}', html: '<p>{{ first_name }}</p>' };
    const recipients = [{ email: 'ann@x.io', name: 'Ann', merge: { first_name: 'Ann', code: 'A1' } }, { email: 'bo@x.io' }];
    await sendBulk(sg)({
      params: sendBulkInput.parse({ template, recipients }),
      workspaceId: 'ws1',
      idempotencyKey: 'bulk-tags',
      credentials: { provider: 'sendgrid', credential: 'SG.k', from: 'news@shop.test' },
      signal: new AbortController().signal,
    } as unknown as ActionContext);
    expect(renderedFor(sim.sent.at(-1)!.body)).toEqual([
      { to: 'ann@x.io', subject: 'Hi Ann', content: { 'text/plain': 'Dear Ann, code A1', 'text/html': '<p>Ann</p>' } },
      { to: 'bo@x.io', subject: 'Hi ', content: { 'text/plain': 'Dear , code ', 'text/html': '<p></p>' } },
    ]);
  });

  it("a recipient whose merge values SendGrid would refuse in a personalization goes alone, rendered; the batch of the others is not failed for it", async () => {
    const { d } = bulkDeps([]);
    const provider = sendgridProvider('SG.k', { baseUrl: sim.url, timeoutMs: 5000 });
    const sg = { ...d, providerFor: () => provider } as EmailDeps;
    const fields = Array.from({ length: 10 }, (_, i) => `f${i}`);
    const template = { id: 't', subject: 'Hi {{name}}', text: fields.map((f) => `{{${f}}}`).join(' '), html: `<p>${fields.map((f) => `{{${f}}}`).join(' ')}</p>` };
    // 10 fields of 2,000 characters in text and html: about 40 KB of substitutions, SendGrid takes 10,000 bytes.
    const big = Object.fromEntries(fields.map((f) => [f, 'x'.repeat(2000)]));
    const recipients = [{ email: 'a@x.io', name: 'A' }, { email: 'big@x.io', name: 'Big', merge: big }, { email: 'c@x.io', name: 'C', merge: { f0: 'small' } }];
    const before = sim.requests.length;
    const out = (await sendBulk(sg)({
      params: sendBulkInput.parse({ template, recipients }),
      workspaceId: 'ws1',
      idempotencyKey: 'bulk-big',
      credentials: { provider: 'sendgrid', credential: 'SG.k', from: 'news@shop.test' },
      signal: new AbortController().signal,
    } as unknown as ActionContext)) as { sent: { email: string }[]; failed: unknown[] };
    expect(out.failed).toEqual([]);
    expect(out.sent.map((s) => s.email).sort()).toEqual(['a@x.io', 'big@x.io', 'c@x.io']);
    expect(sim.requests.slice(before)).toEqual([{ status: 202, personalizations: 2 }, { status: 202, personalizations: 1 }]);
    const alone = sim.sent.at(-1)!.body;
    expect(alone).toMatchObject({ subject: 'Hi Big', personalizations: [{ to: [{ email: 'big@x.io', name: 'Big' }] }] });
    expect((alone.personalizations as Record<string, unknown>[])[0]!.substitutions).toBeUndefined();
  });
});

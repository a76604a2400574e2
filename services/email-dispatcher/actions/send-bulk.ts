import type { z } from 'zod';
import { sendBulkInput } from '../../../shared/connectors/catalog/email.ts';
import { handler, type ActionContext } from '../../../shared/connectors/types.ts';
import { describeError, HubError } from '../../../shared/errors.ts';
import { customArgs, messageIdFor, unsubscribeHeaders } from '../compose.ts';
import type { EmailDeps } from '../deps.ts';
import { unitKey } from '../ledger.ts';
import { OutageWatch } from '../outage.ts';
import { fitsPersonalization } from '../providers/sendgrid.ts';
import type { Personalization, Provider } from '../providers/types.ts';
import { htmlTags, plainTags, render, renderSubject, substitutions, tagsOf } from '../render.ts';
import { suppressionKey } from '../suppressions.ts';
import { recorded, runUnit, type UnitOutcome } from '../unit.ts';
import { prepare, providerNameOf, type Prepared } from './prepare.ts';

type Recipient = { email: string; name?: string; merge?: Record<string, string | number | boolean> };

/**
 * Runs `work` over `items` with at most `limit` in flight, in order of start. Once one fails or a
 * signal aborts (the action's time is up; the command is handed over to another worker), no item
 * starts; the first error (or the signal's reason) is thrown once those in flight have ended, so a
 * retry of the command, or its new owner, never runs beside this one.
 */
export async function pool<T>(items: T[], limit: number, signals: (AbortSignal | undefined)[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const stopped = () => signals.find((s) => s?.aborted);
  const ended = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && !failed && !stopped()) {
      try {
        await work(items[next++]!);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  }));
  const error = ended.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (error) throw error.reason;
  stopped()?.throwIfAborted();
}

/** How each recipient ended, by lowercased address. */
type Results = Map<string, UnitOutcome | { state: 'suppressed'; reason: string }>;

/**
 * A template to many recipients, each a unit of its own in the ledger (SMTP: one message per
 * recipient; SendGrid: batches of personalizations, every recipient of a batch recorded together).
 * A resumed command sends only to recipients with no record; the outcome lists every recipient
 * once: sent (with the provider's id), suppressed, failed or unknown. A bulk stopped part-way (the
 * credentials refused, out of time, a ledger write failed) still succeeds with that list when
 * anyone may have got the message, the rest `failed` with the reason it stopped, so nobody is
 * mailed twice by a retry under another id; with nobody sent it fails as before (a refused
 * workspace credential then marks the connection). A provider that refuses every attempt
 * (outage.ts) ends the bulk early: those not sent are listed failed `provider_unavailable`.
 */
export const sendBulk = (d: EmailDeps) =>
  handler(sendBulkInput, async (ctx) => {
    const p = ctx.params;
    const key = (address: string) => unitKey(ctx.workspaceId, ctx.idempotencyKey, address);
    // The ledger first: what an earlier run did stands, whatever prepare says now.
    const results: Results = new Map();
    const todo: Recipient[] = [];
    for (const r of p.recipients) {
      const address = r.email.toLowerCase();
      const earlier = recorded(d.ledger, [key(address)]);
      const suppressed = earlier ? undefined : d.suppressions.get(suppressionKey(ctx.workspaceId, address));
      if (earlier) results.set(address, earlier);
      else if (suppressed) results.set(address, { state: 'suppressed', reason: suppressed.reason });
      else todo.push(r);
    }
    let provider = providerNameOf(ctx.credentials);
    const outage = new OutageWatch({ windowMs: d.outageMs, recipientWindowMs: d.waitBudgetMs });
    try {
      const prepared = await prepare(d, ctx);
      // Handed over while fetching attachments: the next owner sends, this worker must not.
      ctx.handover?.throwIfAborted();
      provider = prepared.provider.name;
      await sendAll(d, ctx, prepared, todo, results, outage);
    } catch (e) {
      if (ctx.handover?.aborted) throw e; // the partition's next owner resumes from the ledger
      const stopped = describeError(ctx.signal.aborted && !(e instanceof HubError) ? new HubError('action_timeout', 'the command ran out of time') : e);
      const outcome = outcomeOf(d, ctx, provider, results, stopped);
      if (outcome.sent.length + outcome.unknown.length === 0) throw e;
      d.logger.warn({ workspace: ctx.workspaceId, code: stopped.code, sent: outcome.sent.length, failed: outcome.failed.length }, 'bulk send stopped part-way; the recipients not sent are listed failed');
      return outcome;
    }
    const outcome = outcomeOf(d, ctx, provider, results);
    if (outage.stopped) d.logger.warn({ workspace: ctx.workspaceId, provider, reason: outage.stopped.message, sent: outcome.sent.length, failed: outcome.failed.length }, 'email provider refusing every attempt: bulk stopped early; the recipients not sent are listed failed provider_unavailable');
    return outcome;
  });

/**
 * Sends to every recipient of `todo`, recording each result; throws what stopped it. SendGrid takes
 * batches of personalizations; a recipient whose substitutions SendGrid would refuse (over its
 * per-personalization limits: many or long merge values) goes alone, rendered here, so one
 * recipient never fails a batch of hundreds.
 */
async function sendAll(d: EmailDeps, ctx: BulkContext, prepared: Prepared, todo: Recipient[], results: Results, outage: OutageWatch): Promise<void> {
  const p = ctx.params;
  const t = p.template;
  const { provider, from, attachments, platform } = prepared;
  const key = (address: string) => unitKey(ctx.workspaceId, ctx.idempotencyKey, address);
  const values = (r: Recipient): Record<string, string> => ({
    email: r.email,
    name: r.name ?? '',
    ...Object.fromEntries(Object.entries(r.merge ?? {}).map(([k, v]) => [k, String(v)])),
    unsubscribe_url: d.links.url(ctx.workspaceId, r.email),
  });
  const base = { from, replyTo: p.reply_to, attachments };
  const unit = (keys: string[], messages: number, messageId: string | undefined, call: UnitJobCall) =>
    runUnit(d, { keys, account: provider.account, platform, workspaceId: ctx.workspaceId, messages, messageId, signal: ctx.signal, handover: ctx.handover, outage, call });

  const alone = async (list: Recipient[]) =>
    pool(list, d.concurrency, [ctx.signal, ctx.handover], async (r) => {
      const address = r.email.toLowerCase();
      const v = values(r);
      const messageId = messageIdFor(ctx.workspaceId, ctx.idempotencyKey, address, from);
      const out = await unit([key(address)], 1, messageId, () =>
        provider.send({
          ...base,
          to: [r.name ? { email: r.email, name: r.name } : r.email],
          subject: renderSubject(t.subject, v),
          text: t.text === undefined ? undefined : render(t.text, v),
          html: t.html === undefined ? undefined : render(t.html, v, true),
          headers: { ...p.headers, ...unsubscribeHeaders(v.unsubscribe_url!) },
          messageId,
          customArgs: customArgs(ctx.workspaceId, ctx.idempotencyKey, address),
        }, ctx.signal),
      );
      results.set(address, out);
    });
  if (!provider.sendBatch) return alone(todo);

  // Each tag in the spelling its place needs: `{{tag}}` in subject and text, `{{tag|html}}` in html.
  const used = { plain: tagsOf(t.subject, t.text), html: tagsOf(t.html) };
  const personalization = (r: Recipient) => ({ to: r.name ? { email: r.email, name: r.name } : r.email, substitutions: substitutions(values(r), used), headers: unsubscribeHeaders(d.links.url(ctx.workspaceId, r.email)), customArgs: customArgs(ctx.workspaceId, ctx.idempotencyKey, r.email.toLowerCase()) });
  const batched: { r: Recipient; personalization: Personalization }[] = [];
  const oversized: Recipient[] = [];
  for (const r of todo) {
    const one = personalization(r);
    if (fitsPersonalization(one.substitutions)) batched.push({ r, personalization: one });
    else oversized.push(r);
  }
  const batches: (typeof batched)[] = [];
  for (let i = 0; i < batched.length; i += d.sendgridBatchSize) batches.push(batched.slice(i, i + d.sendgridBatchSize));
  const message = { ...base, subject: plainTags(t.subject), text: t.text === undefined ? undefined : plainTags(t.text), html: t.html === undefined ? undefined : htmlTags(t.html), headers: p.headers ?? {}, messageId: '' };
  await pool(batches, d.concurrency, [ctx.signal, ctx.handover], async (batch) => {
    const out = await unit(batch.map((b) => key(b.r.email.toLowerCase())), batch.length, undefined, () => provider.sendBatch!(message, batch.map((b) => b.personalization), ctx.signal));
    for (const b of batch) results.set(b.r.email.toLowerCase(), out);
  });
  await alone(oversized);
}

/**
 * Every recipient once. One with no result when the bulk stopped is read from the ledger again (a
 * unit left `sending` when the `sent` write failed is `unknown`), else listed failed with `stopped`.
 * `retry_safe` says whether a re-send (a new command) could mail anyone twice: true for a recipient
 * certainly never handed over (no record, `pending`, or a temporary refusal: the provider took
 * nothing), false for one refused for good (a re-send fails the same) or that may have got it.
 */
function outcomeOf(d: EmailDeps, ctx: BulkContext, provider: Provider['name'], results: Results, stopped?: { code: string; message: string }) {
  const outcome = { provider, total: ctx.params.recipients.length, sent: [] as { email: string; message_id: string }[], suppressed: [] as { email: string; reason: string }[], failed: [] as { email: string; code: string; message: string; retry_safe: boolean }[], unknown: [] as { email: string; message_id?: string; retry_safe: false }[] };
  for (const r of ctx.params.recipients) {
    const email = r.email.toLowerCase();
    const o = results.get(email) ?? recorded(d.ledger, [unitKey(ctx.workspaceId, ctx.idempotencyKey, email)]);
    // No result and no record (or `pending`): the bulk stopped before handing it over.
    if (!o) outcome.failed.push({ email, code: stopped?.code ?? 'not_sent', message: stopped?.message ?? 'not sent', retry_safe: true });
    else if (o.state === 'sent') outcome.sent.push({ email, message_id: o.messageId });
    else if (o.state === 'suppressed') outcome.suppressed.push({ email, reason: o.reason });
    // Refused for good (SMTP 5xx, SendGrid 400/403/413, a forbidden host, no credits): the same again.
    else if (o.state === 'failed') outcome.failed.push({ email, code: o.code, message: o.message, retry_safe: false });
    // Certainly never handed over (the ledger says `pending`, or nothing): a re-send mails them once.
    else if (o.state === 'unavailable') outcome.failed.push({ email, code: 'provider_unavailable', message: `not sent, safe to send again: ${o.message}`, retry_safe: true });
    else outcome.unknown.push({ email, ...(o.messageId ? { message_id: o.messageId } : {}), retry_safe: false });
  }
  return outcome;
}

type BulkContext = ActionContext<z.infer<typeof sendBulkInput>>;
type UnitJobCall = Parameters<typeof runUnit>[1]['call'];

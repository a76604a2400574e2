import { sendBulkInput } from '../../../shared/connectors/catalog/email.ts';
import { handler } from '../../../shared/connectors/types.ts';
import { customArgs, messageIdFor, unsubscribeHeaders } from '../compose.ts';
import type { EmailDeps } from '../deps.ts';
import { unitKey } from '../ledger.ts';
import { htmlTags, render, renderSubject, substitutions, tagsOf } from '../render.ts';
import { suppressionKey } from '../suppressions.ts';
import { recorded, runUnit, type UnitOutcome } from '../unit.ts';
import { prepare } from './prepare.ts';

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

/**
 * A template to many recipients, each a unit of its own in the ledger (SMTP: one message per
 * recipient; SendGrid: batches of personalizations, every recipient of a batch recorded together).
 * A resumed command sends only to recipients with no record; the outcome lists every recipient
 * once: sent (with the provider's id), suppressed, failed or unknown.
 */
export const sendBulk = (d: EmailDeps) =>
  handler(sendBulkInput, async (ctx) => {
    const p = ctx.params;
    const t = p.template;
    const { provider, from, attachments, platform } = await prepare(d, ctx);
    // Handed over while fetching attachments: the next owner sends, this worker must not.
    ctx.handover?.throwIfAborted();
    const results = new Map<string, UnitOutcome | { state: 'suppressed'; reason: string }>();
    const key = (address: string) => unitKey(ctx.workspaceId, ctx.idempotencyKey, address);
    const todo: Recipient[] = [];
    for (const r of p.recipients) {
      const address = r.email.toLowerCase();
      const earlier = recorded(d.ledger, [key(address)]);
      const suppressed = earlier ? undefined : d.suppressions.get(suppressionKey(ctx.workspaceId, address));
      if (earlier) results.set(address, earlier);
      else if (suppressed) results.set(address, { state: 'suppressed', reason: suppressed.reason });
      else todo.push(r);
    }
    const values = (r: Recipient): Record<string, string> => ({
      email: r.email,
      name: r.name ?? '',
      ...Object.fromEntries(Object.entries(r.merge ?? {}).map(([k, v]) => [k, String(v)])),
      unsubscribe_url: d.links.url(ctx.workspaceId, r.email),
    });
    const base = { from, replyTo: p.reply_to, attachments };
    const unit = (keys: string[], messages: number, messageId: string | undefined, call: UnitJobCall) =>
      runUnit(d, { keys, account: provider.account, platform, workspaceId: ctx.workspaceId, messages, messageId, signal: ctx.signal, handover: ctx.handover, call });

    if (provider.sendBatch) {
      const used = tagsOf(t.subject, t.text, t.html);
      const batches: Recipient[][] = [];
      for (let i = 0; i < todo.length; i += d.sendgridBatchSize) batches.push(todo.slice(i, i + d.sendgridBatchSize));
      const message = { ...base, subject: t.subject, text: t.text, html: t.html === undefined ? undefined : htmlTags(t.html), headers: p.headers ?? {}, messageId: '' };
      await pool(batches, d.concurrency, [ctx.signal, ctx.handover], async (batch) => {
        const personalizations = batch.map((r) => {
          const all = substitutions(values(r));
          const subs = Object.fromEntries(Object.entries(all).filter(([k]) => used.has(k.slice(2, -2).replace(/\|html$/, ''))));
          return { to: r.name ? { email: r.email, name: r.name } : r.email, substitutions: subs, headers: unsubscribeHeaders(d.links.url(ctx.workspaceId, r.email)), customArgs: customArgs(ctx.workspaceId, ctx.idempotencyKey, r.email.toLowerCase()) };
        });
        const out = await unit(batch.map((r) => key(r.email.toLowerCase())), batch.length, undefined, () => provider.sendBatch!(message, personalizations, ctx.signal));
        for (const r of batch) results.set(r.email.toLowerCase(), out);
      });
    } else {
      await pool(todo, d.concurrency, [ctx.signal, ctx.handover], async (r) => {
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
    }

    const outcome = { provider: provider.name, total: p.recipients.length, sent: [] as { email: string; message_id: string }[], suppressed: [] as { email: string; reason: string }[], failed: [] as { email: string; code: string; message: string }[], unknown: [] as { email: string; message_id?: string }[] };
    for (const r of p.recipients) {
      const email = r.email.toLowerCase();
      const o = results.get(email)!;
      if (o.state === 'sent') outcome.sent.push({ email, message_id: o.messageId });
      else if (o.state === 'suppressed') outcome.suppressed.push({ email, reason: o.reason });
      else if (o.state === 'failed') outcome.failed.push({ email, code: o.code, message: o.message });
      else if (o.state === 'unavailable') outcome.failed.push({ email, code: 'provider_unavailable', message: o.message });
      else outcome.unknown.push({ email, ...(o.messageId ? { message_id: o.messageId } : {}) });
    }
    return outcome;
  });

type UnitJobCall = Parameters<typeof runUnit>[1]['call'];

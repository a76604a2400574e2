import { addressOf, sendInput, type Mailbox } from '../../../shared/connectors/catalog/email.ts';
import { handler, VendorError } from '../../../shared/connectors/types.ts';
import { HubError } from '../../../shared/errors.ts';
import { customArgs, messageIdFor } from '../compose.ts';
import type { EmailDeps } from '../deps.ts';
import { unitKey } from '../ledger.ts';
import type { Provider } from '../providers/types.ts';
import { onceEach, type Recipients } from '../recipients.ts';
import { suppressionKey } from '../suppressions.ts';
import { recorded, runUnit, type UnitOutcome } from '../unit.ts';
import { prepare, providerNameOf } from './prepare.ts';

/**
 * One message, one unit: an address named twice in to/cc/bcc keeps only its first place, and
 * suppressed addresses are dropped; the rest go in one provider call, recorded in the ledger before
 * and after, so a redelivered or resumed command reports the first result instead of sending again.
 */
export const send = (d: EmailDeps) =>
  handler(sendInput, async (ctx) => {
    const p = ctx.params;
    const key = unitKey(ctx.workspaceId, ctx.idempotencyKey, 'message');
    const named = onceEach({ to: p.to, cc: p.cc ?? [], bcc: p.bcc ?? [] });
    // The ledger first: what an earlier run sent stands, whatever the suppressions (a recipient who
    // unsubscribed since) or prepare (an attachment gone) would say now.
    const earlier = recorded(d.ledger, [key]);
    if (earlier) return resultOf(earlier, { provider: providerNameOf(ctx.credentials), accepted: [], rejected: [], suppressed: suppressedBefore(d, ctx.workspaceId, named, earlier) });
    const { provider, from, attachments, platform } = await prepare(d, ctx);
    // Handed over while fetching attachments: the next owner sends it, this worker must not.
    ctx.handover?.throwIfAborted();
    const suppressed: { email: string; reason: string }[] = [];
    const keep = (list: Mailbox[]) =>
      list.filter((m) => {
        const s = d.suppressions.get(suppressionKey(ctx.workspaceId, addressOf(m)));
        if (s) suppressed.push({ email: addressOf(m), reason: s.reason });
        return !s;
      });
    const [to, cc, bcc] = [keep(named.to), keep(named.cc), keep(named.bcc)];
    const base = { provider: provider.name, accepted: [] as string[], rejected: [] as string[], suppressed };
    if (to.length + cc.length + bcc.length === 0) return { ...base, status: 'suppressed' as const };
    // Every to suppressed, cc/bcc left: SMTP sends without a To header (RFC 5322 requires none);
    // SendGrid, which requires a to, gets them readdressed (providers/sendgrid.ts).
    const messageId = messageIdFor(ctx.workspaceId, ctx.idempotencyKey, 'message', from);
    // No waiting here: one message, so the worker's own retries (backoff, Retry-After) do it.
    const out = await runUnit(
      { ...d, waitBudgetMs: 0 },
      {
        keys: [key],
        account: provider.account,
        platform,
        workspaceId: ctx.workspaceId,
        messages: 1,
        messageId,
        signal: ctx.signal,
        // A send waiting for its account (a 429's Retry-After, the platform account's shared rate
        // limit) past the rebalance timeout would otherwise send beside the partition's next owner.
        handover: ctx.handover,
        call: () => provider.send({ from, to, cc, bcc, replyTo: p.reply_to, subject: p.subject, text: p.text, html: p.html, headers: p.headers ?? {}, attachments, messageId, customArgs: customArgs(ctx.workspaceId, ctx.idempotencyKey) }, ctx.signal),
      },
    );
    return resultOf(out, base);
  });

type Base = { provider: Provider['name']; accepted: string[]; rejected: string[]; suppressed: { email: string; reason: string }[] };

/** The action's result for how its unit ended (now, or in an earlier run). */
function resultOf(out: UnitOutcome, base: Base) {
  if (out.state === 'sent') return { ...base, status: 'sent' as const, message_id: out.messageId, accepted: out.accepted, rejected: out.rejected };
  if (out.state === 'unknown') return { ...base, status: 'unknown' as const, message_id: out.messageId };
  if (out.state === 'failed') throw new HubError(out.code, `the provider refused the message: ${out.message}`);
  // Not taken (throttled, 5xx, unreachable): the worker retries the command; the ledger says it was not sent.
  throw new VendorError(out.status ?? 503, `the email provider is unavailable: ${out.message}`, { retryAfterMs: out.retryAfterMs });
}

/**
 * For a message an earlier run recorded: the addresses it must have left out, those suppressed now
 * that the provider neither accepted nor rejected (one suppressed since it went out is not listed).
 */
function suppressedBefore(d: EmailDeps, workspaceId: string, named: Recipients, earlier: UnitOutcome): Base['suppressed'] {
  if (earlier.state !== 'sent') return [];
  const handed = new Set([...earlier.accepted, ...earlier.rejected]);
  return [...named.to, ...named.cc, ...named.bcc]
    .map((m) => ({ email: addressOf(m), s: d.suppressions.get(suppressionKey(workspaceId, addressOf(m))) }))
    .filter((x) => x.s && !handed.has(x.email))
    .map((x) => ({ email: x.email, reason: x.s!.reason }));
}

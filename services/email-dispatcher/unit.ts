import { VendorError } from '../../shared/connectors/types.ts';
import { HubError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import type { Ledger, Unit } from './ledger.ts';
import type { UnitObservation } from './metrics.ts';
import type { OutageWatch } from './outage.ts';
import type { SendResult } from './providers/types.ts';
import type { Throttle } from './throttle.ts';

/** How one unit (a message, or a batch of recipients) ended. */
export type UnitOutcome =
  | { state: 'sent'; messageId: string; accepted: string[]; rejected: string[] }
  | { state: 'failed'; code: string; message: string }
  /** Handed to the provider by an earlier run that stopped before hearing back: not repeated. */
  | { state: 'unknown'; messageId?: string }
  /** The provider stayed unavailable (throttled, 5xx, unreachable) for longer than the wait budget. */
  | { state: 'unavailable'; code: string; message: string; status?: number; retryAfterMs?: number };

export interface UnitDeps {
  ledger: Ledger;
  providerThrottle: Throttle;
  workspaceThrottle: Throttle;
  /** How long a unit may wait on an unavailable provider in total. */
  waitBudgetMs: number;
  logger: Logger;
  observe?(o: UnitObservation): void;
}

export interface UnitJob {
  /** Ledger keys of every recipient in the unit (one for a message). */
  keys: string[];
  account: string;
  workspaceId: string;
  /** Messages the unit counts for in the rate limits. */
  messages: number;
  messageId?: string;
  signal: AbortSignal;
  /**
   * The credentials are the platform's account, not the workspace's: refused, they are the
   * operator's to fix, so the command fails `provider_unauthorized` and the workspace's connection
   * is left alone (a `vendor_unauthorized` would mark it needs_reauth, which the workspace cannot fix).
   */
  platform?: boolean;
  /**
   * The command's handover (its partition is moving): a unit waiting for the rate limits or for
   * an unavailable provider stops there, recorded `pending` or not at all, and throws HandedOver,
   * so the next owner sends it and this worker never does after that.
   */
  handover?: AbortSignal | undefined;
  /**
   * The bulk's view of its provider (outage.ts): every answer is told to it, and once it declares
   * the provider down the unit stops waiting and ends `unavailable` without calling again.
   */
  outage?: OutageWatch;
  call(): Promise<SendResult>;
}

/** What an earlier run left in the ledger for these keys, or null when the unit is still to do. */
export function recorded(ledger: Ledger, keys: string[]): UnitOutcome | null {
  const units = keys.map((k) => ledger.get(k)).filter((u): u is Unit => u !== undefined && u.state !== 'pending');
  if (units.length === 0) return null;
  const u = units.find((x) => x.state === 'sending') ?? units[0]!;
  if (u.state === 'sending') return { state: 'unknown', messageId: u.message_id };
  if (u.state === 'failed') return { state: 'failed', code: u.code ?? 'failed', message: u.error ?? '' };
  return { state: 'sent', messageId: u.message_id ?? '', accepted: u.accepted ?? [], rejected: u.rejected ?? [] };
}

export const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(new HubError('action_timeout', 'the command ran out of time'));
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), reject(new HubError('action_timeout', 'the command ran out of time'))), { once: true });
  });

/**
 * Sends one unit at most once: waits for the rate limits, records `sending`, calls the provider,
 * records the result. A provider that throttles or is down is waited for (Retry-After honoured,
 * only this account waits; an SMTP 421 holds the account too) within the budget, or until the
 * bulk's outage watch calls the provider down; refused credentials stop the command (the
 * workspace's: 401, which marks its connection; the platform's: provider_unauthorized).
 */
export async function runUnit(d: UnitDeps, job: UnitJob): Promise<UnitOutcome> {
  const earlier = recorded(d.ledger, job.keys);
  if (earlier) return earlier;
  // The provider is down: not even the rate limits are waited for.
  const down = (): UnitOutcome | undefined => (job.outage?.stopped ? { state: 'unavailable', ...job.outage.stopped } : undefined);
  if (down()) return down()!;
  const write = (u: Omit<Unit, 'at'>) => d.ledger.write(job.keys.map((k) => [k, { ...u, at: Date.now() }]));
  const stops = [job.signal, job.handover, job.outage?.signal].filter((s): s is AbortSignal => s !== undefined);
  const stop = stops.length > 1 ? AbortSignal.any(stops) : job.signal;
  /** Waits `ms`; false when the outage was declared meanwhile. */
  const pause = async (ms: number) => {
    try {
      await sleep(ms, stop);
      return true;
    } catch (e) {
      job.handover?.throwIfAborted(); // HandedOver
      if (!job.signal.aborted && job.outage?.stopped) return false;
      throw e;
    }
  };
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    const wait = Math.max(d.providerThrottle.take(job.account, job.messages), d.workspaceThrottle.take(job.workspaceId, job.messages));
    if (wait > 0 && !(await pause(wait))) return down()!;
    // Handed over while waiting: past the rebalance timeout the partition's next owner sends it.
    job.handover?.throwIfAborted();
    // A record that came in while this unit waited (the ledger follows its topic: another owner's)
    // wins; `sending` is never written over it.
    const meanwhile = wait > 0 || attempt > 1 ? recorded(d.ledger, job.keys) : null;
    if (meanwhile) return meanwhile;
    if (down()) return down()!;
    await write({ state: 'sending', message_id: job.messageId });
    const t0 = performance.now();
    const r = await job.call();
    const provider = job.account.split(':')[0]!;
    const seen = (state: UnitObservation['state']) => d.observe?.({ provider, state, messages: job.messages, providerMs: performance.now() - t0 });
    if (r.ok || r.kind === 'rejected') job.outage?.served();
    if (r.ok) {
      seen('sent');
      await write({ state: 'sent', message_id: r.messageId || job.messageId, accepted: r.accepted, rejected: r.rejected });
      return { state: 'sent', messageId: r.messageId || job.messageId || '', accepted: r.accepted, rejected: r.rejected };
    }
    if (r.kind === 'ambiguous') {
      seen('unknown');
      d.logger.warn({ code: r.code, workspace: job.workspaceId }, 'provider connection broke after the message was handed over; not resent');
      return { state: 'unknown', messageId: job.messageId };
    }
    if (r.kind === 'rejected') {
      seen('failed');
      await write({ state: 'failed', code: r.code, error: r.message });
      return { state: 'failed', code: r.code, message: r.message };
    }
    // Certainly not taken: the unit is to do again.
    await write({ state: 'pending' });
    if (r.kind === 'unauthorized') {
      seen('failed');
      if (job.platform) {
        d.logger.error({ code: r.code, account: job.account }, "the email provider refused the platform account's credentials; no platform mail goes out until they are fixed");
        throw new HubError('provider_unauthorized', `the email provider refused the platform account's credentials (the operator's to fix): ${r.message}`);
      }
      throw new VendorError(401, `the email provider refused the credentials: ${r.message}`);
    }
    const backoff = Math.min(30_000, 500 * 2 ** (attempt - 1));
    const delay = Math.max(backoff, r.retryAfterMs ?? 0);
    if (r.retryAfterMs !== undefined) d.providerThrottle.block(job.account, Date.now() + r.retryAfterMs);
    // The server closed the channel (421): the account's other units reconnect after the back-off too.
    else if (r.closing) d.providerThrottle.block(job.account, Date.now() + backoff);
    seen('throttled');
    if (job.outage?.refused(job.keys[0]!, r)) return down()!;
    if (Date.now() - started + delay > d.waitBudgetMs) return { state: 'unavailable', code: r.code, message: r.message, status: r.status, retryAfterMs: r.retryAfterMs };
    d.logger.debug({ code: r.code, delay, attempt }, 'provider unavailable; waiting');
    if (!(await pause(delay))) return down()!;
  }
}

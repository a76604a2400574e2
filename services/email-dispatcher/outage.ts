import type { SendResult } from './providers/types.ts';

/** A provider answer that certainly took nothing and may be tried again (SMTP 4xx, 429, 5xx, no connection). */
export type Refusal = Extract<SendResult, { kind: 'not_sent' }>;

export interface OutageSettings {
  /** How long the provider may take nothing, refusing every attempt, before the bulk stops. */
  windowMs: number;
  /**
   * The same when every refusal in the run was of its recipient (an SMTP 4xx to RCPT TO, e.g. a
   * greylisted or full mailbox): one unit's wait budget, so a deferred recipient never stops a bulk
   * sooner than its own unit would have given up.
   */
  recipientWindowMs: number;
}

/**
 * One bulk command's view of its provider. Each unit waits on a provider that refuses it for up to
 * its own budget; a relay that refuses every message (an SMTP 421, the same 4xx to everyone, a
 * SendGrid 5xx on every request) would so make a bulk wait units x budget before the sender heard
 * anything. This watch follows the run of refusals with nothing taken in between: once it spans at
 * least two units and has lasted the window, the outage is declared: its signal stops the units
 * waiting, no further unit calls the provider, and every recipient not sent is reported failed,
 * never handed over, so sending to them again is safe. A message taken (or refused for good:
 * the provider answers per message) ends the run, so one transient 4xx is retried as before.
 */
export class OutageWatch {
  private run: { since: number; units: Set<string>; recipientOnly: boolean } | undefined;
  private reason: { code: string; message: string } | undefined;
  private readonly stop = new AbortController();

  constructor(private readonly s: OutageSettings, private readonly now: () => number = Date.now) {}

  /** Aborted when the outage is declared. */
  get signal(): AbortSignal {
    return this.stop.signal;
  }

  /** Why the bulk stopped, once it did: what each unit it did not send reports. */
  get stopped(): { code: string; message: string } | undefined {
    return this.reason;
  }

  /** The provider took a message, or answered about that message alone: it is serving. */
  served(): void {
    if (!this.reason) this.run = undefined;
  }

  /** An attempt of `unit` the provider certainly did not take; true once the outage is declared. */
  refused(unit: string, r: Refusal): boolean {
    if (this.reason) return true;
    const now = this.now();
    const run = (this.run ??= { since: now, units: new Set(), recipientOnly: true });
    run.units.add(unit);
    run.recipientOnly &&= r.recipient === true;
    const window = run.recipientOnly ? this.s.recipientWindowMs : Math.min(this.s.windowMs, this.s.recipientWindowMs);
    if (run.units.size < 2 || now - run.since < window) return false;
    const seconds = Math.round((now - run.since) / 1000);
    this.reason = { code: r.code, message: `the email provider took nothing for ${seconds} s, refusing every attempt of ${run.units.size} units (last: ${r.message}); the bulk stopped there` };
    this.stop.abort();
    return true;
  }
}

import type { z } from 'zod';
import { topics } from '../bus/topics.ts';
import type { OutgoingRecord } from '../bus/types.ts';
import { VendorError, type ActionContext } from '../connectors/types.ts';
import { Deferred, describeError, HandedOver, HubError } from '../errors.ts';
import { buildEvent, PayloadSchemas, type PlatformEvent } from '../events/platform-event.ts';
import { redactString } from '../redact.ts';
import { wsConnectorKey } from './state.ts';
import type { Job, PipelineDeps, Verdict } from './pipeline.ts';

export interface Retry {
  maxAttempts: number;
  initialMs: number;
  maxWaitMs: number;
}

/**
 * Calls the handler with retries (vendor 429/408/5xx and retryable errors: exponential backoff
 * with jitter, honouring Retry-After, up to the budget), then checks the result against the
 * action's output schema. Events the handler emits are checked when emitted: an undeclared or
 * invalid one fails the handler, so nothing is left half-recorded after the vendor call.
 * Records staged `evenOnFailure` (by every attempt) go with the outcome, failed or not: see `keptOf`.
 */
export async function execute(job: Job, d: PipelineDeps): Promise<Verdict> {
  const attempt = await callWithRetries(job, d);
  if (!attempt.ok) {
    const { error } = attempt;
    if (error.code === 'vendor_unauthorized') {
      // The refusal is the command's outcome whether or not the mark could be written.
      await markUnauthorized(job, d, redactString(error.message)).catch((e: unknown) => d.logger.warn({ workspace_id: job.c.workspace_id, err: describeError(e) }, 'could not mark the connection needs_reauth'));
    }
    const authHelp = error.code === 'vendor_unauthorized' ? { auth_help: d.connector.manifest.authHelp } : {};
    return withKept({ kind: 'fail', failure: { ...error, ...authHelp, attempts: attempt.attempts } }, attempt.kept);
  }
  const output = job.action!.output.safeParse(attempt.result);
  if (!output.success) return withKept({ kind: 'fail', failure: { code: 'invalid_vendor_response', message: output.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ').slice(0, 500), attempts: attempt.attempts } }, attempt.kept);
  let events: OutgoingRecord[];
  try {
    events = await Promise.all(attempt.produced.events.map(async (e) => d.eventRecord(e.topic, e.event)));
  } catch (e) {
    // The registry or the codec failed after the vendor call: retried, what it billed still kept.
    return withKept({ kind: 'fail', failure: { code: 'internal_error', message: `the action's events could not be encoded: ${describeError(e).message}`, attempts: attempt.attempts } }, attempt.kept);
  }
  return withKept({ kind: 'succeed', result: output.data, attempts: attempt.attempts, extra: [...events, ...attempt.produced.staged, ...attempt.kept] }, attempt.kept);
}

/**
 * The vendor refused the credentials the command used: the connection needs re-authorizing,
 * unless it was renewed since the command read it (a reconnect racing the refusal stands).
 */
async function markUnauthorized(job: Job, d: PipelineDeps, detail: string): Promise<void> {
  const used = job.connection?.updated_at;
  if (d.connector.markUnauthorized) return d.connector.markUnauthorized(job.c.workspace_id, detail, used);
  const key = wsConnectorKey(job.c.workspace_id, d.connector.manifest.id);
  await d.workspaceConnectors.fresh().catch(() => undefined); // else the table as it is
  const now = d.workspaceConnectors.get(key);
  if (now && now.updated_at !== used) return;
  await d.workspaceConnectors.set(key, { ...(now ?? { settings: {} }), connection: 'needs_reauth', connection_detail: detail, updated_at: new Date(d.now()).toISOString() });
}

/**
 * The records a verdict must publish with its outcome whatever it says: those the handler staged
 * `evenOnFailure` (what a vendor already did and billed). A succeeded verdict also has them in
 * `extra`; a failed one only here, for the worker to add to the failed outcome's unit (and a
 * verdict the worker turns into another failure, such as result_too_large, must keep them).
 */
export const keptOf = (v: Verdict): OutgoingRecord[] => ((v.kind === 'fail' || v.kind === 'succeed') && v.kept) || [];

/** The verdict carrying `kept`, if there are any. */
export const withKept = <V extends Verdict & { kind: 'fail' | 'succeed' }>(v: V, kept: OutgoingRecord[]): V => (kept.length ? { ...v, kept } : v);

/**
 * The final verdict of a command the worker ran again (a retried failure), carrying what the
 * earlier runs' vendor calls billed: those calls stand whatever the last run decided.
 */
export function carryKept(v: Verdict, earlier: OutgoingRecord[]): Verdict {
  if (earlier.length === 0 || (v.kind !== 'fail' && v.kind !== 'succeed')) return v;
  const kept = [...earlier, ...(v.kept ?? [])];
  return v.kind === 'succeed' ? { ...v, kept, extra: [...v.extra, ...earlier] } : { ...v, kept };
}

/**
 * Waits at least this long are not slept inside the handler when the command's partition holds
 * one workspace's commands only: the command is deferred instead (RetryLater), so the worker's
 * other workspaces' commands are fetched and run meanwhile. Shorter backoffs are slept.
 */
export const DEFER_MIN_MS = 1000;

/**
 * A deferred command whose vendor answers 429 (a rate limit: "not now", not a failure) is called
 * again this many times at most, beside its `Retry.maxAttempts` failed calls: waiting costs the
 * worker's other workspaces nothing there (Shopify's cost bucket refills in seconds; its old
 * in-handler loop allowed as many). In place (not deferrable) a 429 counts as an attempt.
 */
export const RATE_LIMITED_CALLS_MAX = 20;

/**
 * A vendor asked the command to wait `ms` after `attempts` calls (none of which changed anything):
 * the worker records that in the command's state, with `kept`, and pauses its partition.
 */
export class RetryLater extends Deferred {
  /** `attempts` calls were made, `rateLimited` of them answered 429 (these count against RATE_LIMITED_CALLS_MAX only). */
  constructor(ms: number, readonly attempts: number, readonly kept: OutgoingRecord[], readonly rateLimited = 0) {
    super(ms, `the vendor asked to wait ${Math.ceil(ms / 1000)} s before attempt ${attempts + 1}`);
    this.name = 'RetryLater';
  }
}

type Produced = { events: { topic: string; event: PlatformEvent }[]; staged: OutgoingRecord[] };
type Attempt = { ok: true; result: unknown; attempts: number; produced: Produced; kept: OutgoingRecord[] } | { ok: false; error: { code: string; message: string; retryable: boolean }; attempts: number; kept: OutgoingRecord[] };

async function callWithRetries(job: Job, d: PipelineDeps): Promise<Attempt> {
  const { c } = job;
  const handler = d.connector.handlers[job.name]!;
  const { retry } = d;
  // A resumable action stops at its next safe point when its partition is handed over (job.handover).
  const handover = d.connector.resumable?.has(job.name) ? job.handover : undefined;
  // What every attempt staged or emitted evenOnFailure: a failed attempt's vendor call stands (and
  // was billed). Emitted events are encoded as they come (a rejection is seen where they are awaited).
  const keeping: Promise<OutgoingRecord>[] = [];
  const kept = () => Promise.all(keeping);
  let rateLimited = job.rateLimitedBefore ?? 0;
  for (let attempts = (job.attemptsBefore ?? 0) + 1; ; attempts++) {
    const produced: Produced = { events: [], staged: [] };
    let emittedCount = 0;
    // Which call of the handler this is for the command, across the worker's own retries and
    // deferrals: what a call emits has ids of its own (two billed calls, two usage events).
    const call = (job.calls = Math.max(job.calls ?? 0, attempts - 1) + 1);
    // The attempt's deadline; its timer is made only for a handler that reads the signal.
    const deadline = Date.now() + d.actionTimeoutMs;
    let signal: AbortSignal | undefined;
    const ctx: ActionContext = {
      params: job.params!,
      workspaceId: c.workspace_id,
      agentId: c.agent_id,
      idempotencyKey: c.command_id,
      credentials: job.credentials ?? {},
      settings: job.connection?.settings ?? {},
      logger: d.logger,
      get signal() {
        return (signal ??= AbortSignal.timeout(Math.max(0, deadline - Date.now())));
      },
      handover,
      deferrable: job.deferrable === true,
      source: job.record,
      resumed: job.resumed,
      emit: (entity, action, payload, o) => {
        const e = emitted(job, d, call, emittedCount++, entity, action, payload);
        if (!o?.evenOnFailure) return void produced.events.push(e);
        const record = d.eventRecord(e.topic, e.event);
        record.catch(() => undefined);
        keeping.push(record);
      },
      stage: (record, o) => void (o?.evenOnFailure ? keeping.push(Promise.resolve(record)) : produced.staged.push(record)),
    };
    try {
      const result = await handler(ctx);
      return { ok: true, result, attempts, produced, kept: await kept() };
    } catch (e) {
      // Stopped for the handover (whatever it threw then): no outcome here; the next owner resumes it.
      if (handover?.aborted) throw new HandedOver();
      const err = describeError(e);
      const retryable = (e instanceof VendorError || e instanceof HubError) && e.retryable;
      // Deferred, a rate limit's "not now" has a budget of its own (RATE_LIMITED_CALLS_MAX).
      const limited = job.deferrable === true && e instanceof VendorError && e.status === 429 && rateLimited < RATE_LIMITED_CALLS_MAX;
      if (limited) rateLimited++;
      const failures = attempts - rateLimited;
      if (!retryable || (!limited && failures >= retry.maxAttempts)) {
        return { ok: false, error: { code: retryable ? 'vendor_unavailable' : err.code, message: err.message, retryable }, attempts, kept: await kept() };
      }
      const backoff = Math.min(retry.maxWaitMs, retry.initialMs * 2 ** Math.max(0, failures - 1));
      const asked = e instanceof VendorError ? (e.retryAfterMs ?? 0) : 0;
      const wait = Math.min(retry.maxWaitMs, Math.max(backoff, asked)) + Math.random() * backoff * 0.5;
      if (job.deferrable && wait >= DEFER_MIN_MS) throw new RetryLater(Math.ceil(wait), attempts, await kept(), rateLimited);
      await new Promise((r) => setTimeout(r, wait));
      if (handover?.aborted) throw new HandedOver();
    }
  }
}

/** The declared schema of an emitted event as PayloadSchemas (made once per schema, not per event). */
const schemasBySchema = new WeakMap<z.ZodType, PayloadSchemas>();
function schemasOf(schema: z.ZodType): PayloadSchemas {
  let s = schemasBySchema.get(schema);
  if (!s) schemasBySchema.set(schema, (s = new PayloadSchemas().register('*', schema)));
  return s;
}

/** An emitted event, checked against the connector's declared schema at once (throws `invalid_event`). */
function emitted(job: Job, d: PipelineDeps, call: number, index: number, entity: string, action: string, payload: unknown): { topic: string; event: PlatformEvent } {
  const schema = d.connector.events?.[`${entity}.${action}`];
  if (!schema) throw new HubError('invalid_event', `${d.connector.manifest.id} declares no event ${entity}.${action}`);
  const c = job.c;
  try {
    const event = buildEvent(schemasOf(schema), { eventType: `${d.service}.${entity}.${action}`, workspaceId: c.workspace_id, source: `${d.service}-worker`, payload, idempotencyKey: call === 1 ? `${c.command_id}:emit:${index}` : `${c.command_id}:emit:${call}.${index}`, correlationId: c.command_id, causationId: c.command_id });
    return { topic: topics.event(d.service, c.workspace_id, entity, action), event };
  } catch (e) {
    throw new HubError('invalid_event', `event ${entity}.${action}: ${describeError(e).message}`);
  }
}

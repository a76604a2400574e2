import type { z } from 'zod';
import { HubError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { OutgoingRecord } from '../bus/types.ts';
import type { Manifest } from './manifest.ts';

/** What an action handler gets: validated params, the workspace's credentials, and an idempotency key. */
export interface ActionContext<P = Record<string, unknown>> {
  params: P;
  workspaceId: string;
  agentId: string;
  /** The command id: pass it to vendors that dedupe (Idempotency-Key, webhook-id). */
  idempotencyKey: string;
  /** Merged credentials: the workspace's own fields override the platform's. */
  credentials: Record<string, string>;
  /** Workspace settings of this connector (e.g. pre-approved URLs). */
  settings: Record<string, unknown>;
  logger: Logger;
  signal: AbortSignal;
  /**
   * True when this command was started before (the worker stopped mid-action) and the action is
   * `resumable`: the handler must consult its own ledger and do only the units not yet done.
   */
  resumed: boolean;
  /**
   * For a `resumable` action: aborts when the command's partition is being handed over to another
   * worker (a rebalance, this worker stopping). The handler checks it at its safe points (between
   * units, pages, chunks; never inside a vendor call whose effect it could not tell) and stops
   * there by throwing; the command then resumes on the new owner, with nothing recorded here.
   */
  handover?: AbortSignal;
  /**
   * True when the worker defers this command on a retryable VendorError whose wait
   * (`retryAfterMs`, backoff) is a second or more, pausing only its workspace's topic meanwhile
   * (docs/commands.md). A handler throws such an error instead of sleeping a long wait itself
   * only then; elsewhere the worker would sleep it in place and count it as an attempt. Deferred,
   * a 429 does not count against the attempts (up to RATE_LIMITED_CALLS_MAX of them).
   */
  deferrable?: boolean;
  /**
   * The partition the command was read from. One worker owns it at a time, and its next owner
   * reads the `resumeTables` to their end before working on it: state kept per partition (the
   * LLM's spend totals) has one writer at a time, where state kept per workspace would have one per
   * partition its commands come from (its own topic and the service's, maybe on two instances).
   */
  source?: { readonly topic: string; readonly partition: number };
  /**
   * Publishes an extra event `ionflux.<service>.ws_<ws>.<entity>.<action>` in the same transaction
   * as the outcome, if the command succeeds; with `evenOnFailure` (as `stage`), with a failed
   * outcome too (the LLM's usage event of a call the provider billed). Its payload must match the
   * connector's `events` schema. Its event id is derived from the command id and the event's
   * place among what this call of the handler emitted (`<command id>:emit:<n>`; from the
   * command's second call of the handler on, `<command id>:emit:<call>.<n>`).
   */
  emit(entity: string, action: string, payload: unknown, o?: StageOptions): void;
  /**
   * A record published in the same transaction as the outcome (the platform connector stages an
   * approval decision and the command it releases), if the command succeeds. With
   * `evenOnFailure`, with a failed outcome too: the record of something the vendor already did
   * and bills for, which a later failure does not undo (the LLM's spend totals after a call).
   */
  stage(record: OutgoingRecord, o?: StageOptions): void;
}

export interface StageOptions {
  /** Published with the outcome whether the command succeeds or fails (a retry's records add up). */
  evenOnFailure?: boolean;
}

export type ActionHandler = (ctx: ActionContext) => Promise<unknown>;

type Health = { ok: boolean; detail?: string };

/**
 * What every process may know of a connector (shared/connectors/catalog/): its manifest, the
 * events its handlers emit, and a healthcheck of credentials, used by the CLI before storing them.
 */
export interface ConnectorSpec {
  manifest: Manifest;
  /** zod schemas of the extra events handlers emit, keyed `<entity>.<action>`. */
  events?: Record<string, z.ZodType>;
  /** Checks credentials against the vendor (used by `ionflux connect` and `integrations test`). */
  healthcheck?(credentials: Record<string, string>, signal: AbortSignal): Promise<Health>;
}

/** A connector as its service runs it: the spec plus a handler per action. */
export interface Connector extends ConnectorSpec {
  handlers: Record<string, ActionHandler>;
  /**
   * Actions whose handlers record each unit of work (a recipient sent, a page synced, a publish
   * id) in a ledger of their own before and after doing it. A command redelivered after a crash
   * mid-action runs such a handler again with `resumed: true` instead of failing `outcome_unknown`.
   */
  resumable?: ReadonlySet<string>;
  /**
   * Marks the workspace's connection needs_reauth after the vendor refused (401) the credentials
   * a command used. `usedUpdatedAt` is the `updated_at` of the connection row the command read.
   * A connector whose connections are renewed behind the worker's back (OAuth reconnects, token
   * refreshes) implements it as a compare-and-set, so a refusal of old credentials never marks a
   * newer connection. Without it the worker writes the mark unless the row changed since it was read.
   */
  markUnauthorized?(workspaceId: string, detail: string, usedUpdatedAt: string | undefined): Promise<void>;
  /** An external write the workspace allowed in advance (e.g. a pre-approved URL) needs no approval. */
  preapproved?(action: string, params: Record<string, unknown>, settings: Record<string, unknown>): boolean;
  healthcheck(credentials: Record<string, string>, signal: AbortSignal): Promise<Health>;
}

/**
 * A vendor's HTTP failure. 429/503 (with Retry-After) are retried with backoff; 400/401/410 are
 * not; 401 also marks the connection as needing re-authorization.
 */
export class VendorError extends HubError {
  readonly status: number;
  readonly retryAfterMs?: number;

  constructor(status: number, message: string, opts: { retryAfterMs?: number; cause?: unknown } = {}) {
    const retryable = status === 429 || status === 408 || status >= 500;
    super(status === 401 ? 'vendor_unauthorized' : `vendor_http_${status}`, message, { retryable, cause: opts.cause });
    this.status = status;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** Parses a Retry-After header (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Helper so connector modules get typed params from their manifest's zod input schema. */
export function handler<S extends z.ZodType>(_input: S, fn: (ctx: ActionContext<z.infer<S>>) => Promise<unknown>): ActionHandler {
  return fn as ActionHandler;
}

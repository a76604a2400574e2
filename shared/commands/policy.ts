/**
 * What the command pipeline does per failure code: the one table, in code, that docs/commands.md
 * shows (a unit test checks they agree). Every failure ends in a `failed` outcome to the sender;
 * the columns say what else happens.
 * - retry: the step runs again in place with backoff (up to the worker's retry budget); when the
 *   budget is spent the outcome is still published, with the dead letter.
 * - deadLetter: the original record also goes to `ionflux.dlq.<service>` with the reason.
 * - audit: an `action_failed` record on `ionflux.platform.audit`.
 */
export interface FailurePolicy {
  retry: boolean;
  deadLetter: boolean;
  audit: boolean;
  /** When it happens, for the docs table. */
  when: string;
}

const row = (when: string, retry: boolean, deadLetter: boolean, audit: boolean): FailurePolicy => ({ when, retry, deadLetter, audit });

export const FAILURES = {
  invalid_command: row('not JSON, not decodable Avro, or the envelope is invalid (outcome to the key\'s workspace, under the command id if one could be read)', false, true, false),
  expired_command: row('the record is older than the dedupe window (`COMMAND_DEDUPE_WINDOW_HOURS`): a replay or an offset reset; never run', false, true, true),
  deadline_exceeded: row('its `deadline` passed before it ran', false, true, false),
  invalid_reply_to: row('`reply_to` is not an agent outputs topic or one of the service\'s event topics of the command\'s workspace (outcome to the default topic)', false, true, false),
  unknown_action: row('this service has no such action (a worker runs only its own connector)', false, true, false),
  invalid_params: row('params fail the action\'s input schema', false, true, false),
  forbidden_workspace: row('an agent\'s command (on `ionflux.cmd.<service>.ws_<workspace>`) names another workspace; told and audited in the topic\'s workspace, never run', false, false, true),
  forbidden_principal: row('an action only an admin may send (deciding approvals), or a release of an approval that no admin signed', false, false, true),
  financial_actions_disabled: row('a financial action in a workspace that has not enabled them', false, false, true),
  blocked: row('the action\'s gate is `blocked_by_default`', false, false, true),
  settings_unavailable: row('an external write or a financial action, and the workspace\'s settings (`ionflux.state.workspace-connectors`) could not be read to their end: Kafka did not answer', true, true, true),
  secret_store_unavailable: row('the secret store cannot be read', true, true, true),
  not_connected: row('credentials missing (with the connector\'s `auth_help`)', false, false, false),
  needs_reauthorization: row('the connection is marked for re-authorization (after a vendor 401 or a failed token refresh)', false, false, false),
  approval_mismatch: row('a command reuses the id (or approval) of one awaiting approval with other content; the kept command still waits', false, false, true),
  idempotency_key_reused: row('a command reuses the id of a finished or running one with other content (action, params, `reply_to` or `agent_id`; params named `*_seal` do not count); it does not run, is not answered with that one\'s outcome, and that one\'s state stands. States written before this check count as the same command', false, false, true),
  approval_denied: row('an admin denied it', false, false, true),
  outcome_unknown: row('the worker stopped after calling the vendor and before recording the result; the call is **not** repeated', false, false, true),
  vendor_unavailable: row('vendor 429/408/5xx or network error on every attempt (backoff with jitter, honouring `Retry-After`)', false, true, true),
  vendor_unauthorized: row('vendor 401; the connection becomes `needs_reauth`', false, false, true),
  vendor_rejected: row('vendor 400/403/404/410/422 (code `vendor_http_<status>`)', false, false, true),
  forbidden_destination: row('the connector\'s request would reach a loopback, private, link-local or reserved address (checked on the address connected to) not in `OUTBOUND_ALLOWLIST`', false, false, true),
  invalid_vendor_response: row('the result fails the action\'s output schema', false, false, true),
  result_too_large: row('the action ran, but its outcome event would be over 3 MiB (the broker takes at most 4 MiB a message): the failure is told instead of a result the broker would refuse, and the result is not kept', false, true, true),
  invalid_event: row('the handler emitted an event its connector does not declare, or one failing its schema', false, false, true),
  handler_error: row('the handler failed in a way it names (its own code, e.g. `budget_exceeded`)', false, false, true),
  internal_error: row('anything unexpected (a bug); retried, then dead-lettered', true, true, true),
} as const satisfies Record<string, FailurePolicy>;

export type FailureCode = keyof typeof FAILURES;

/** The policy of any code a step or handler produced; vendor and handler codes fall into their rows. */
export function policyFor(code: string): FailurePolicy {
  if (code in FAILURES) return FAILURES[code as FailureCode];
  if (code.startsWith('vendor_http_')) return FAILURES.vendor_rejected;
  return FAILURES.handler_error;
}

/** The markdown table docs/commands.md carries between its policy-table markers. */
export function policyTableMarkdown(): string {
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  const lines = ['| code | when | retried | dead letter | audited |', '|---|---|---|---|---|'];
  for (const [code, p] of Object.entries(FAILURES)) lines.push(`| \`${code}\` | ${p.when} | ${yes(p.retry)} | ${yes(p.deadLetter)} | ${yes(p.audit)} |`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(`${policyTableMarkdown()}\n`);

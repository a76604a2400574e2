import { decisionRecords } from '../../shared/commands/approvals.ts';
import { approvalSigningKey } from '../../shared/commands/release.ts';
import { openApprovals, type Approval } from '../../shared/commands/state.ts';
import { createEventCodec } from '../../shared/events/codec.ts';
import { createRegistry } from '../../shared/events/registry.ts';
import { assertWorkspaceId } from '../../shared/ids.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { parse, UsageError } from './args.ts';
import { cliContext } from './context.ts';
import { cliActor, emit } from './integrations.ts';
import type { CliCommand } from './main.ts';

const USAGE = `ionflux approvals list [--workspace <w>] [--status pending|approved|denied|all] [--json]
       ionflux approvals approve <id> [--reason <text>] [--json]
       ionflux approvals deny <id> [--reason <text>] [--json]`;
const STATUSES = ['pending', 'approved', 'denied', 'all'];

/** Params can be large or sensitive-looking; the list shows a short preview, --json the whole record. */
const preview = (v: unknown, n = 80) => {
  const s = JSON.stringify(v) ?? '';
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
};

function describe(a: Approval): string {
  const decided = a.status === 'pending' ? '' : `  ${a.status} by ${a.decided_by ?? '?'} at ${a.decided_at ?? '?'}${a.reason ? ` (${a.reason})` : ''}`;
  return `${a.approval_id}  ${a.status.padEnd(8)}  ${a.command.workspace_id}  ${a.connector}.${a.action}  agent=${a.command.agent_id}  requested ${a.requested_at}  params=${preview(a.command.params)}${decided}`;
}

async function list(args: string[]): Promise<number> {
  const { values } = parse(args, { workspace: { type: 'string' }, status: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  const status = values.status ?? 'pending';
  if (!STATUSES.includes(status)) throw new UsageError(`--status must be one of ${STATUSES.join(', ')}`);
  const ws = values.workspace ? assertWorkspaceId(values.workspace) : undefined;
  const ctx = cliContext();
  const approvals = await openApprovals(ctx);
  try {
    const rows = approvals
      .entries()
      .map(([, a]) => a)
      .filter((a) => (status === 'all' || a.status === status) && (!ws || a.command.workspace_id === ws))
      .sort((a, b) => a.requested_at.localeCompare(b.requested_at));
    for (const a of rows) emit(values.json, a, describe(a));
    if (!rows.length && !values.json) process.stdout.write(`no ${status === 'all' ? '' : `${status} `}approvals${ws ? ` for ${ws}` : ''}\n`);
    return 0;
  } finally {
    await approvals.close();
    await ctx.close();
  }
}

/**
 * The decision and the released command are written in one transaction (decisionRecords); the service's
 * worker then runs the command once (approved) or answers approval_denied. Deciding twice is
 * refused (exit 1), so a second approve can never release the command again.
 */
async function decide(decision: 'approved' | 'denied', args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { reason: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  const id = positionals[0];
  if (!id || positionals.length !== 1) throw new UsageError(`expected one approval id\nusage: ${USAGE}`);
  const ctx = cliContext(undefined, { transactional: true });
  const store = createSecretStore(ctx.env);
  const [approvals, codec, signingKey] = await Promise.all([openApprovals(ctx), createEventCodec(createRegistry(ctx.env.SCHEMA_REGISTRY_URL)), approvalSigningKey(store)]);
  try {
    const { decided: a, records } = await decisionRecords({ codec, approvals, signingKey }, id, decision, cliActor(), values.reason);
    // The decision, the released command (with the signed decision) and the audit: one transaction.
    await ctx.bus.publishAtomic(records);
    emit(values.json, a, `${decision} ${id}: ${a.connector}.${a.action} for ${a.command.workspace_id} (command ${a.command.command_id} ${decision === 'approved' ? 're-sent to the worker' : 'will be answered approval_denied'})`);
    return 0;
  } finally {
    await approvals.close();
    await store.close?.();
    await ctx.close();
  }
}

export const approvalsCommand: CliCommand = {
  summary: 'approvals list|approve|deny   external writes waiting for a human decision',
  async run(args) {
    const [sub, ...rest] = args;
    if (sub === 'list') return list(rest);
    if (sub === 'approve') return decide('approved', rest);
    if (sub === 'deny') return decide('denied', rest);
    throw new UsageError(`usage: ${USAGE}`);
  },
};

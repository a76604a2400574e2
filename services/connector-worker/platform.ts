import type { KafkaTable } from '../../shared/bus/table/table.ts';
import { decisionRecords } from '../../shared/commands/approvals.ts';
import { approvalSigningKey } from '../../shared/commands/release.ts';
import type { Approval } from '../../shared/commands/state.ts';
import { decisionInput, spec } from '../../shared/connectors/catalog/platform.ts';
import { handler, type Connector } from '../../shared/connectors/types.ts';
import { HubError } from '../../shared/errors.ts';
import type { EventCodec } from '../../shared/events/codec.ts';
import type { SecretStore } from '../../shared/secrets/index.ts';

/**
 * ionflux.cmd.platform: `approvals.approve` / `approvals.deny` { approval_id, reason? }. The
 * manifest admits admins only, so the pipeline refuses (and audits) an agent's decision before
 * this runs. The decision, the released command and the audit entry are staged into the
 * outcome's transaction: one commit for all of them. Run again after that transaction aborted,
 * the command stages the same decision again (decisionRecords).
 */
export function createPlatformConnector(deps: { codec: EventCodec; approvals: KafkaTable<Approval>; store: SecretStore }): Connector {
  const decide = (decision: 'approved' | 'denied') =>
    handler(decisionInput, async (ctx) => {
      const a = deps.approvals.get(ctx.params.approval_id);
      if (!a || a.command.workspace_id !== ctx.workspaceId) throw new HubError('unknown_approval', `no approval ${ctx.params.approval_id} in this workspace`);
      const signingKey = await approvalSigningKey(deps.store);
      const { decided, records } = await decisionRecords({ codec: deps.codec, approvals: deps.approvals, signingKey }, a.approval_id, decision, `admin:${ctx.agentId}`, ctx.params.reason, ctx.idempotencyKey);
      for (const r of records) ctx.stage(r);
      // Seen here before the transaction commits, so a second decision in that window is refused.
      // Should the transaction abort, this command runs again and stages the same decision.
      deps.approvals.applyLocal(a.approval_id, decided);
      return { approval_id: decided.approval_id, status: decision };
    });
  return {
    ...spec,
    handlers: { 'approvals.approve': decide('approved'), 'approvals.deny': decide('denied') },
    // A decision whose outcome transaction aborted is run again (not failed outcome_unknown): the
    // approvals table is its ledger, and the same command stages the same records.
    resumable: new Set(['approvals.approve', 'approvals.deny']),
    healthcheck: async () => ({ ok: true }),
  };
}

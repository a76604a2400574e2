import type { KafkaTable } from '../bus/table/table.ts';
import type { Bus } from '../bus/types.ts';
import { topics } from '../bus/topics.ts';
import { HubError } from '../errors.ts';
import type { EventCodec } from '../events/codec.ts';
import { auditRecord } from './audit.ts';
import { encodeCommandJson } from './envelope.ts';
import type { Approval } from './state.ts';

/**
 * Approving or denying releases the kept command: the decision and the command (now carrying
 * its approval id) are written in one transaction; the service's worker then runs it once, or
 * answers `approval_denied`. Used by `ionflux approvals` and by `approvals.*` on ionflux.cmd.platform.
 */
export async function decideApproval(
  deps: { bus: Bus; codec: EventCodec; approvals: KafkaTable<Approval> },
  approvalId: string,
  decision: 'approved' | 'denied',
  actor: string,
  reason?: string,
): Promise<Approval> {
  const a = deps.approvals.get(approvalId);
  if (!a) throw new HubError('unknown_approval', `no approval ${approvalId}`);
  if (a.status !== 'pending') throw new HubError('already_decided', `approval ${approvalId} was already ${a.status}`);
  const decided: Approval = { ...a, status: decision, decided_at: new Date().toISOString(), decided_by: actor, ...(reason ? { reason } : {}) };
  const command = { ...a.command, approval_id: approvalId, deadline: a.command.deadline ?? undefined };
  const audit = await auditRecord(deps.codec, 'platform', { kind: 'approval_decided', workspace_id: a.command.workspace_id, connector: a.connector, action: a.action, command_id: a.command.command_id, approval_id: approvalId, actor, outcome: decision, detail: reason }, `${approvalId}:${decision}`);
  await deps.bus.publishAtomic([
    deps.approvals.record(approvalId, decided),
    { topic: topics.command(a.service), key: a.command.workspace_id, value: encodeCommandJson(command) },
    audit,
  ]);
  deps.approvals.applyLocal(approvalId, decided);
  return decided;
}

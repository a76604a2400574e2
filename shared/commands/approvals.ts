import type { KafkaTable } from '../bus/table.ts';
import { topics } from '../bus/topics.ts';
import type { OutgoingRecord } from '../bus/types.ts';
import { HubError } from '../errors.ts';
import type { EventCodec } from '../events/codec.ts';
import { auditRecord } from './audit.ts';
import { commandDigest } from './digest.ts';
import { encodeCommandJson } from './envelope.ts';
import { RELEASE_HEADER, signRelease } from './release.ts';
import type { Approval } from './state.ts';

/**
 * An admin's decision as the records that carry it: the approval's new state, the kept command
 * re-sent to its service with the signed decision in a header, and the audit entry. Published
 * together, in one transaction, by whoever decides (`ionflux approvals`, or the platform
 * connector for an admin principal); the worker then runs exactly the kept command once, or
 * answers `approval_denied`. Deciding twice is refused.
 */
export async function decisionRecords(
  deps: { codec: EventCodec; approvals: KafkaTable<Approval>; signingKey: Buffer },
  approvalId: string,
  decision: 'approved' | 'denied',
  actor: string,
  reason?: string,
): Promise<{ decided: Approval; records: OutgoingRecord[] }> {
  const a = deps.approvals.get(approvalId);
  if (!a) throw new HubError('unknown_approval', `no approval ${approvalId}`);
  if (a.status !== 'pending') throw new HubError('already_decided', `approval ${approvalId} was already ${a.status}`);
  const decidedAt = new Date().toISOString();
  const decided: Approval = { ...a, status: decision, decided_at: decidedAt, decided_by: actor, ...(reason ? { reason } : {}) };
  const command = { ...a.command, approval_id: approvalId, deadline: a.command.deadline ?? undefined };
  // The digest of what the admin saw; the worker runs the release only if the command it carries has it.
  const digest = a.digest ?? commandDigest(a.service, a.command);
  const header = signRelease(deps.signingKey, { approval_id: approvalId, digest, decision, decided_by: actor, decided_at: decidedAt });
  const audit = await auditRecord(deps.codec, 'platform', { kind: 'approval_decided', workspace_id: a.command.workspace_id, connector: a.connector, action: a.action, command_id: a.command.command_id, approval_id: approvalId, actor, outcome: decision, detail: reason }, `${approvalId}:${decision}`);
  return {
    decided,
    records: [
      deps.approvals.record(approvalId, decided),
      { topic: topics.command(a.service), key: a.command.workspace_id, value: encodeCommandJson(command), headers: { [RELEASE_HEADER]: header } },
      audit,
    ],
  };
}

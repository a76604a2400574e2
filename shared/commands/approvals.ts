import type { KafkaTable } from '../bus/table/table.ts';
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
 * re-sent to its service with the signed decision in a header (see `releaseTopic`), and the audit entry. Published
 * together, in one transaction, by whoever decides (`ionflux approvals`, or the platform
 * connector for an admin principal); the worker then runs exactly the kept command once, or
 * answers `approval_denied`. Deciding twice is refused, except by the platform command that
 * decided (`command`) run again: its transaction may have aborted after its table saw the
 * decision, and it gets the same records again (same time, same signature, same ids).
 */
export async function decisionRecords(
  deps: { codec: EventCodec; approvals: KafkaTable<Approval>; signingKey: Buffer },
  approvalId: string,
  decision: 'approved' | 'denied',
  actor: string,
  reason?: string,
  /** The platform command deciding, if one is. */
  command?: string,
): Promise<{ decided: Approval; records: OutgoingRecord[] }> {
  const a = deps.approvals.get(approvalId);
  if (!a) throw new HubError('unknown_approval', `no approval ${approvalId}`);
  const again = a.status === decision && command !== undefined && a.decided_command === command;
  if (a.status !== 'pending' && !again) throw new HubError('already_decided', `approval ${approvalId} was already ${a.status}`);
  const decided: Approval = again
    ? a
    : { ...a, status: decision, decided_at: new Date().toISOString(), decided_by: actor, ...(command ? { decided_command: command } : {}), ...(reason ? { reason } : {}) };
  const released = { ...a.command, approval_id: approvalId, deadline: a.command.deadline ?? undefined };
  // The digest of what the admin saw; the worker runs the release only if the command it carries has it.
  const digest = a.digest ?? commandDigest(a.service, a.command);
  const header = signRelease(deps.signingKey, { approval_id: approvalId, digest, decision, decided_by: decided.decided_by!, decided_at: decided.decided_at! });
  const audit = await auditRecord(deps.codec, 'platform', { kind: 'approval_decided', workspace_id: a.command.workspace_id, connector: a.connector, action: a.action, command_id: a.command.command_id, approval_id: approvalId, actor: decided.decided_by!, outcome: decision, detail: decided.reason }, `${approvalId}:${decision}`);
  return {
    decided,
    records: [
      deps.approvals.record(approvalId, decided),
      { topic: releaseTopic(a), key: a.command.workspace_id, value: encodeCommandJson(released), headers: { [RELEASE_HEADER]: header } },
      audit,
    ],
  };
}

/**
 * Where a release goes: back to the workspace's own command topic when the command came on it
 * (there a wait the vendor asks for pauses that workspace's topic alone, and the command runs in
 * order with the workspace's others), else to the service's topic, where admins and services send.
 */
export function releaseTopic(a: Pick<Approval, 'service' | 'command' | 'topic'>): string {
  const own = topics.workspaceCommand(a.service, a.command.workspace_id);
  return a.topic === own ? own : topics.command(a.service);
}

import { z } from 'zod';
import { topics } from '../bus/topics.ts';
import type { OutgoingRecord } from '../bus/types.ts';
import type { EventCodec } from '../events/codec.ts';
import { buildEvent, PayloadSchemas } from '../events/platform-event.ts';
import { EVENT_HEADERS } from '../events/publisher.ts';

export const AUDIT_KINDS = ['install', 'connect', 'disconnect', 'action_used', 'action_failed', 'approval_requested', 'approval_decided', 'secret_changed', 'principal_created', 'principal_revoked'] as const;

const auditSchema = z.object({
  kind: z.enum(AUDIT_KINDS),
  workspace_id: z.string(),
  connector: z.string(),
  action: z.string().optional(),
  command_id: z.string().optional(),
  approval_id: z.string().optional(),
  actor: z.string(),
  outcome: z.string().optional(),
  detail: z.string().optional(),
});
export type AuditEntry = z.infer<typeof auditSchema>;

const schemas = new PayloadSchemas().register('platform.audit.*', auditSchema);

/** An audit record for `ionflux.platform.audit`, keyed by workspace: who did what with which connector. */
export async function auditRecord(codec: EventCodec, source: string, entry: AuditEntry, idempotencyKey?: string): Promise<OutgoingRecord> {
  const event = buildEvent(schemas, { eventType: `platform.audit.${entry.kind}`, workspaceId: entry.workspace_id, source, payload: entry, idempotencyKey, correlationId: entry.command_id ?? entry.approval_id ?? null });
  return {
    topic: topics.audit,
    key: entry.workspace_id,
    value: await codec.encode(event),
    headers: { [EVENT_HEADERS.eventId]: event.event_id, [EVENT_HEADERS.eventType]: event.event_type, [EVENT_HEADERS.workspace]: entry.workspace_id },
  };
}

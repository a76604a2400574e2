import { createHash } from 'node:crypto';
import type { Command } from './envelope.ts';

/** JSON with object keys sorted at every level, so equal content always hashes alike. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * What an approval binds to: the exact command (service, action, params, workspace, reply_to).
 * The agent id, deadline and approval id do not change what runs, so they are not part of it.
 */
export function commandDigest(service: string, c: Pick<Command, 'action' | 'params' | 'workspace_id' | 'reply_to'>): string {
  const action = c.action.startsWith(`${service}.`) ? c.action.slice(service.length + 1) : c.action;
  return createHash('sha256')
    .update(canonical({ service, action, params: c.params, workspace_id: c.workspace_id, reply_to: c.reply_to ?? null }))
    .digest('hex');
}

/** The approval id of a command: another command reusing its id with other content gets another. */
export const approvalIdFor = (service: string, c: Pick<Command, 'command_id' | 'workspace_id'>, digest: string) =>
  `apr_${createHash('sha256').update(`${service}:${c.workspace_id}:${c.command_id}:${digest}`).digest('hex').slice(0, 24)}`;

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

/** An action without its service's prefix (`llm.text_generation` on ionflux.cmd.llm is `text_generation`). */
export const bareAction = (service: string, action: string) => (action.startsWith(`${service}.`) ? action.slice(service.length + 1) : action);

/**
 * What an approval binds to: the exact command (service, action, params, workspace, reply_to).
 * The agent id, deadline and approval id do not change what runs, so they are not part of it.
 */
export function commandDigest(service: string, c: Pick<Command, 'action' | 'params' | 'workspace_id' | 'reply_to'>): string {
  const action = bareAction(service, c.action);
  return createHash('sha256')
    .update(canonical({ service, action, params: c.params, workspace_id: c.workspace_id, reply_to: c.reply_to ?? null }))
    .digest('hex');
}

/**
 * A param whose name ends in `_seal` is an attestation a front door attaches to a command (the
 * email API's `platform_seal`), not what the sender asked for. It carries an expiry, so two honest
 * sends of one request carry different seals.
 */
export const isSeal = (param: string) => param.endsWith('_seal');

/**
 * What a command id stands for, for dedupe: a re-send with this digest is the same command and
 * gets its outcome; another digest is another command reusing the id (`idempotency_key_reused`).
 * The approval's content (commandDigest's fields) and who sent it (`agent_id`: the email API's
 * platform token and a workspace token share a workspace's keys), without seals (`isSeal`).
 * Deadline and approval id are left out: a retry may set another deadline, a release adds the id.
 */
export function dedupeDigest(service: string, c: Pick<Command, 'action' | 'params' | 'workspace_id' | 'reply_to' | 'agent_id'>): string {
  const action = bareAction(service, c.action);
  const params = Object.fromEntries(Object.entries(c.params).filter(([k]) => !isSeal(k)));
  return createHash('sha256')
    .update(canonical({ service, action, params, workspace_id: c.workspace_id, reply_to: c.reply_to ?? null, agent_id: c.agent_id }))
    .digest('base64url');
}

/** The approval id of a command: another command reusing its id with other content gets another. */
export const approvalIdFor = (service: string, c: Pick<Command, 'command_id' | 'workspace_id'>, digest: string) =>
  `apr_${createHash('sha256').update(`${service}:${c.workspace_id}:${c.command_id}:${digest}`).digest('hex').slice(0, 24)}`;

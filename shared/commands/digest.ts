import { createHash, hash } from 'node:crypto';
import type { Command } from './envelope.ts';

/** JSON with object keys sorted at every level, so equal content always hashes alike. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    let out = '';
    for (const k of Object.keys(o).sort()) {
      if (o[k] === undefined) continue;
      out += `${out ? ',' : ''}${JSON.stringify(k)}:${canonical(o[k])}`;
    }
    return `{${out}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * canonical() of the digests' own objects, whose keys are fixed: written out in their sorted
 * order, the same text as canonical() of the whole object, without sorting or building it (every
 * command is digested: this is on the worker's hot path).
 */
function canonicalFields(fields: readonly (readonly [string, unknown])[]): string {
  let out = '';
  for (const [k, v] of fields) if (v !== undefined) out += `${out ? ',' : ''}"${k}":${canonical(v)}`;
  return `{${out}}`;
}

/** An action without its service's prefix (`llm.text_generation` on ionflux.cmd.llm is `text_generation`). */
export const bareAction = (service: string, action: string) => (action.startsWith(`${service}.`) ? action.slice(service.length + 1) : action);

/**
 * What an approval binds to: the exact command (service, action, params, workspace, reply_to).
 * The agent id, deadline and approval id do not change what runs, so they are not part of it.
 */
export function commandDigest(service: string, c: Pick<Command, 'action' | 'params' | 'workspace_id' | 'reply_to'>): string {
  const action = bareAction(service, c.action);
  return hash('sha256', canonicalFields([['action', action], ['params', c.params], ['reply_to', c.reply_to ?? null], ['service', service], ['workspace_id', c.workspace_id]]), 'hex');
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
  const params = Object.keys(c.params).some(isSeal) ? Object.fromEntries(Object.entries(c.params).filter(([k]) => !isSeal(k))) : c.params;
  const fields = [['action', action], ['agent_id', c.agent_id], ['params', params], ['reply_to', c.reply_to ?? null], ['service', service], ['workspace_id', c.workspace_id]] as const;
  return hash('sha256', canonicalFields(fields), 'base64url');
}

/** The approval id of a command: another command reusing its id with other content gets another. */
export const approvalIdFor = (service: string, c: Pick<Command, 'command_id' | 'workspace_id'>, digest: string) =>
  `apr_${createHash('sha256').update(`${service}:${c.workspace_id}:${c.command_id}:${digest}`).digest('hex').slice(0, 24)}`;

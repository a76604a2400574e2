import { z } from 'zod';
import { topics, workspaceOfTopic } from '../bus/topics.ts';
import { HubError } from '../errors.ts';
import { buildEvent, PayloadSchemas, type PlatformEvent } from '../events/platform-event.ts';
import type { Command } from './envelope.ts';

export const OUTCOME_STATUSES = ['succeeded', 'failed', 'awaiting_approval'] as const;
export type OutcomeStatus = (typeof OUTCOME_STATUSES)[number];

/** The payload of `<service>.command.<status>` events. */
export const outcomePayloadSchema = z.object({
  command_id: z.string(),
  agent_id: z.string(),
  service: z.string(),
  action: z.string(),
  status: z.enum(OUTCOME_STATUSES),
  result: z.unknown().optional(),
  error: z.object({ code: z.string(), message: z.string(), retryable: z.boolean().optional(), auth_help: z.string().optional() }).optional(),
  approval_id: z.string().optional(),
  attempts: z.number().int().nonnegative(),
});
export type OutcomePayload = z.infer<typeof outcomePayloadSchema>;

/** The payload_schema_version of every outcome event. */
export const OUTCOME_SCHEMA_VERSION = '1';

export const outcomeSchemas = new PayloadSchemas().register('*', outcomePayloadSchema, OUTCOME_SCHEMA_VERSION);

/** Where outcomes go when the command names no reply_to: `ionflux.<service>.ws_<ws>.command.outcomes`. */
export function defaultOutcomeTopic(service: string, workspaceId: string): string {
  return topics.event(service, workspaceId, 'command', 'outcomes');
}

/**
 * reply_to must be a topic of the sender's own workspace that the service may write: an agent
 * outputs topic (`ionflux.agent.<agent>.ws_<workspace>.outputs`) or one of the service's own event
 * topics (`ionflux.<service>.ws_<workspace>.<entity>.<action>`). So a command cannot make the hub
 * write into another workspace, nor into another source's topics (the broker would refuse it too).
 */
export function outcomeTopic(c: Pick<Command, 'reply_to' | 'service' | 'workspace_id'>): string {
  if (!c.reply_to) return defaultOutcomeTopic(c.service, c.workspace_id);
  const own = c.reply_to.startsWith(`ionflux.${c.service}.`) || c.reply_to.startsWith('ionflux.agent.');
  if (!own || workspaceOfTopic(c.reply_to) !== c.workspace_id) {
    throw new HubError('invalid_reply_to', `reply_to must be a topic of the sending workspace: ionflux.agent.<agent>.ws_<workspace>.outputs or ionflux.${c.service}.ws_<workspace>.<entity>.<action>`);
  }
  return c.reply_to;
}

/** The outcome event; its id is derived from the command id, so a repeated outcome is recognisable. */
export function outcomeEvent(service: string, c: Pick<Command, 'command_id' | 'workspace_id' | 'agent_id' | 'action'>, p: Omit<OutcomePayload, 'command_id' | 'agent_id' | 'service' | 'action'>): PlatformEvent {
  return buildEvent(outcomeSchemas, {
    eventType: `${service}.command.${p.status}`,
    workspaceId: c.workspace_id,
    source: `${service}-worker`,
    payload: { command_id: c.command_id, agent_id: c.agent_id, service, action: c.action, ...p },
    idempotencyKey: `${c.command_id}:${p.status}`,
    correlationId: c.command_id,
    causationId: c.command_id,
  });
}

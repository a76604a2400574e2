import { HubError } from './errors.ts';

/**
 * Ids that become parts of topic names or secret paths. Dots separate topic segments and
 * slashes separate path segments, so neither may appear; nor may anything outside ASCII.
 */
const SEGMENT = /^[a-z0-9](?:[a-z0-9_-]{0,62})$/;
const AGENT_OR_SOURCE = /^[a-z0-9](?:[a-z0-9_-]{0,62})$/;

export function isWorkspaceId(id: unknown): id is string {
  return typeof id === 'string' && SEGMENT.test(id);
}

/** Returns the id unchanged or throws `invalid_workspace_id` naming the rule it broke. */
export function assertWorkspaceId(id: unknown): string {
  if (isWorkspaceId(id)) return id;
  throw new HubError('invalid_workspace_id', `workspace id must match ${SEGMENT} (lowercase letters, digits, _ and -, at most 63 chars)`);
}

/** Same rule for other name segments (service, source, agent, entity, action). */
export function assertSegment(kind: string, value: unknown): string {
  if (typeof value === 'string' && AGENT_OR_SOURCE.test(value)) return value;
  throw new HubError(`invalid_${kind}`, `${kind} must match ${AGENT_OR_SOURCE}`);
}

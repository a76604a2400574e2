import { HubError } from './errors.ts';

/**
 * Ids that become parts of topic names or secret paths. Dots separate topic segments and
 * slashes separate path segments, so neither may appear; nor may anything outside ASCII.
 *
 * Workspace ids (and event sources, see shared/bus/topics.ts) carry no '_' either: Kafka treats
 * '.' and '_' as the same character when it checks a new topic name for collisions (both become
 * '_' in metric names) and refuses the second of two colliding names. With '_' allowed in both,
 * `ws_acme.x_y` and `ws_acme_x.y` collide, so one workspace could take or block another's topic.
 */
const WORKSPACE = /^[a-z0-9](?:[a-z0-9-]{0,62})$/;
/** A topic name segment (entity, action, service, ...). */
export const SEGMENT = /^[a-z0-9](?:[a-z0-9_-]{0,62})$/;
/** Segments that other segments follow in a topic name, so they may not hold '_'. */
export const NO_UNDERSCORE_SEGMENT = /^[a-z0-9](?:[a-z0-9-]{0,62})$/;

export function isWorkspaceId(id: unknown): id is string {
  return typeof id === 'string' && WORKSPACE.test(id);
}

/** Returns the id unchanged or throws `invalid_workspace_id` naming the rule it broke. */
export function assertWorkspaceId(id: unknown): string {
  if (isWorkspaceId(id)) return id;
  throw new HubError('invalid_workspace_id', `workspace id must match ${WORKSPACE} (lowercase letters, digits and -, at most 63 chars)`);
}

/** The rule for other name segments (service, agent, entity, action; sources are stricter). */
export function assertSegment(kind: string, value: unknown, rule: RegExp = SEGMENT): string {
  if (typeof value === 'string' && rule.test(value)) return value;
  throw new HubError(`invalid_${kind}`, `${kind} must match ${rule}`);
}

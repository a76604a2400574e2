import { HubError } from '../errors.ts';
import { assertSegment, assertWorkspaceId, NO_UNDERSCORE_SEGMENT } from '../ids.ts';

/**
 * The only place topic strings are built. Every variable part is validated, so no input can
 * add a segment or land in another workspace's topic.
 *   events:        ionflux.<source>.ws_<workspace>.<entity>.<action>
 *   commands:      ionflux.cmd.<service> (admin and services), ionflux.cmd.<service>.ws_<workspace> (agents)
 *   agent outputs: ionflux.agent.<agent>.ws_<workspace>.outputs
 *   platform:      ionflux.platform.audit | ionflux.platform.user_activity
 *   dead letters:  ionflux.dlq.<service>
 *   hub state:     ionflux.state.<name> (compacted)
 *   internal:      ionflux.internal.<source> (copies of the lifecycle events workers act on)
 *
 * No two workspaces' (or sources') names can collide, even as Kafka compares them ('.' and '_'
 * alike): sources and workspace ids hold no '_', so `ionflux_<source>_ws_<workspace>_...` still
 * splits into one source and one workspace. Agent ids may hold '_': the workspace is the last
 * part before `outputs`. Entity and action may hold '_' (draft_orders, spam_reported): only
 * within one workspace and source can `a_b.c` and `a.b_c` collide; the vendor tables produce no
 * such pair (a unit test checks), so only a workspace's own generic sender could, to itself.
 */
const MAX_TOPIC_LENGTH = 249;
// Second segments that mean something else; an event source named so would be ambiguous.
const RESERVED_SOURCES = new Set(['cmd', 'agent', 'dlq', 'state', 'internal', 'inbox']);
/** True for a second segment that means something else than an event source (topics.event refuses it). */
export const isReservedSource = (source: string) => RESERVED_SOURCES.has(source);

const eventSource = (source: string) => assertSegment('source', source, NO_UNDERSCORE_SEGMENT);

function checked(topic: string): string {
  if (topic.length > MAX_TOPIC_LENGTH) throw new HubError('invalid_topic', `topic name longer than ${MAX_TOPIC_LENGTH} characters`);
  return topic;
}

export const topics = {
  event(source: string, workspaceId: string, entity: string, action: string): string {
    if (isReservedSource(source)) throw new HubError('invalid_source', `source "${source}" is reserved`);
    return checked(
      `ionflux.${eventSource(source)}.ws_${assertWorkspaceId(workspaceId)}.${assertSegment('entity', entity)}.${assertSegment('action', action)}`,
    );
  },
  command(service: string): string {
    return checked(`ionflux.cmd.${assertSegment('service', service)}`);
  },
  /**
   * The command topic of one workspace: only that workspace's agents (and the admin) may write it,
   * so the worker knows a command's workspace from where it came (docs/security.md).
   */
  workspaceCommand(service: string, workspaceId: string): string {
    return checked(`ionflux.cmd.${assertSegment('service', service)}.ws_${assertWorkspaceId(workspaceId)}`);
  },
  agentOutputs(agentId: string, workspaceId: string): string {
    return checked(`ionflux.agent.${assertSegment('agent', agentId)}.ws_${assertWorkspaceId(workspaceId)}.outputs`);
  },
  deadLetter(service: string): string {
    return checked(`ionflux.dlq.${assertSegment('service', service)}`);
  },
  /** A compacted topic holding one kind of hub state (see TopicProvisioner's defaults). */
  state(name: string): string {
    return checked(`ionflux.state.${assertSegment('state', name)}`);
  },
  /**
   * One fixed topic per event source that a worker subscribes to by name: copies of the events it
   * must act on in every workspace (uninstalls, revoked authorizations, bounces). A regex over the
   * workspace topics would miss workspaces created after it subscribed.
   */
  internal(source: string): string {
    return checked(`ionflux.internal.${eventSource(source)}`);
  },
  audit: 'ionflux.platform.audit',
  userActivity: 'ionflux.platform.user_activity',
} as const;

const EVENT_TOPIC = /^ionflux\.([a-z0-9][a-z0-9-]*)\.ws_([a-z0-9][a-z0-9-]*)\.([a-z0-9][a-z0-9_-]*)\.([a-z0-9][a-z0-9_-]*)$/;
const AGENT_TOPIC = /^ionflux\.agent\.([a-z0-9][a-z0-9_-]*)\.ws_([a-z0-9][a-z0-9-]*)\.outputs$/;

const WORKSPACE_COMMAND_TOPIC = /^ionflux\.cmd\.([a-z0-9][a-z0-9_-]*)\.ws_([a-z0-9][a-z0-9-]*)$/;

/** The workspace of a workspace command topic (`ionflux.cmd.<service>.ws_<ws>`), else null. */
export function workspaceOfCommandTopic(topic: string): string | null {
  return WORKSPACE_COMMAND_TOPIC.exec(topic)?.[2] ?? null;
}

/** Whether a topic is a workspace's command outcomes, `ionflux.<service>.ws_<ws>.command.outcomes`. */
export function isCommandOutcomesTopic(topic: string): boolean {
  const m = EVENT_TOPIC.exec(topic);
  return m?.[3] === 'command' && m[4] === 'outcomes';
}

/** Every workspace command topic of one service, as a subscription pattern. */
export function workspaceCommandPattern(service: string): RegExp {
  return new RegExp(`^ionflux\\.cmd\\.${assertSegment('service', service)}\\.ws_[a-z0-9][a-z0-9-]*$`);
}

/** The workspace a topic belongs to, or null for commands, platform and dead-letter topics. */
export function workspaceOfTopic(topic: string): string | null {
  const m = AGENT_TOPIC.exec(topic) ?? EVENT_TOPIC.exec(topic);
  return m ? m[2]! : null;
}

/**
 * Turns a user's subscription pattern into a RegExp anchored at both ends. A plain topic name
 * matches itself only; anything with regex syntax is used as given (e.g. `ionflux.shopify.ws_.*.orders.created`).
 */
export function topicPattern(pattern: string): string | RegExp {
  return /[*+?()[\]{}|^$\\]/.test(pattern) ? new RegExp(`^(?:${pattern})$`) : pattern;
}

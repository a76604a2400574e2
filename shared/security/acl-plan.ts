import { INBOX_PREFIX } from '../ingest/inbox.ts';
import type { AclBinding, AclOperation } from '../bus/security.ts';
import { topics } from '../bus/topics.ts';
import { agentPrincipal, SCHEMA_REGISTRY_PRINCIPAL, SERVICES, servicePrincipal, VENDOR_SOURCES, type ServiceProfile } from './principals.ts';

/**
 * Which prefixed and literal ACLs each principal gets, computed from the topic naming scheme
 * (shared/bus/topics.ts). The admin and the broker are super users and get none. Everything here
 * is "allow"; nothing else is allowed (allow.everyone.if.no.acl.found=false).
 */
export interface PlanInput {
  /** Every connector id that has a command topic (the catalog plus extra connectors). */
  commandIds: string[];
  /** Connector ids agents may send commands to (those with an action agents may invoke). */
  agentCommandIds: string[];
  /** The sources of generic webhook endpoints, per workspace. */
  genericSources: { workspaceId: string; source: string }[];
}

type Pattern = AclBinding['pattern'];

function grant(principal: string, resource: AclBinding['resource'], name: string, pattern: Pattern, ...operations: AclOperation[]): AclBinding[] {
  return operations.map((operation) => ({ principal, resource, name, pattern, operation, permission: 'allow' as const }));
}

/** The connector ids a service runs (`*`: every one no other service claims). */
export function commandsOf(service: string, input: Pick<PlanInput, 'commandIds'>): string[] {
  const profile = SERVICES[service];
  if (!profile) return [];
  if (!profile.commands.includes('*')) return profile.commands;
  const claimed = new Set(Object.values(SERVICES).flatMap((p) => p.commands));
  return input.commandIds.filter((id) => !claimed.has(id));
}

/** A service's bindings: what it consumes, the topics it produces, its groups and transactional ids. */
export function servicePlan(service: string, input: PlanInput): AclBinding[] {
  const profile: ServiceProfile | undefined = SERVICES[service];
  if (!profile) throw new Error(`no service ${service} in shared/security/principals.ts`);
  const p = servicePrincipal(service);
  const topic = (name: string, pattern: Pattern, ...ops: AclOperation[]) => grant(p, 'topic', name, pattern, ...ops);
  const out: AclBinding[] = [];
  const commands = commandsOf(service, input);
  for (const c of commands) {
    out.push(
      ...topic(topics.command(c), 'literal', 'read', 'create'),
      // Agents' command topics of every workspace, `ionflux.cmd.<c>.ws_<ws>`: read only.
      ...topic(`${topics.command(c)}.ws_`, 'prefixed', 'read'),
      // Outcomes and the events its handlers emit: ionflux.<c>.ws_<ws>.<entity>.<action>.
      ...topic(`ionflux.${c}.`, 'prefixed', 'write', 'create'),
      ...topic(topics.state(`commands-${c}`), 'literal', 'read', 'write', 'create'),
      ...topic(topics.deadLetter(c), 'literal', 'write', 'create'),
      ...grant(p, 'group', `ionflux-${c}-worker`, 'literal', 'read'),
    );
  }
  if (commands.length) {
    out.push(
      // Outcomes to an agent's reply_to (outputs topics are created on first use).
      ...topic('ionflux.agent.', 'prefixed', 'write', 'create'),
      ...topic(topics.state('approvals'), 'literal', 'read', 'write', 'create'),
      ...topic(topics.state('workspace-connectors'), 'literal', 'read', 'write', 'create'),
    );
  }
  out.push(...topic(topics.audit, 'literal', 'write', 'create'));
  for (const s of profile.sources ?? []) out.push(...topic(`ionflux.${s}.`, 'prefixed', 'write', 'create'));
  if (profile.genericSources) {
    for (const g of input.genericSources) out.push(...topic(`ionflux.${g.source}.ws_${g.workspaceId}.`, 'prefixed', 'write', 'create'));
  }
  for (const s of profile.internalWrite ?? []) out.push(...topic(topics.internal(s), 'literal', 'write', 'create'));
  for (const s of profile.internalRead ?? []) out.push(...topic(topics.internal(s), 'literal', 'read', 'create'));
  for (const s of profile.stateWrite ?? []) out.push(...topic(topics.state(s), 'literal', 'read', 'write', 'create'));
  for (const s of profile.stateRead ?? []) out.push(...topic(topics.state(s), 'literal', 'read', 'create'));
  // The inbox, and the inboxes of separate hubs on the same brokers (IONFLUX_INBOX_TOPIC).
  if (profile.inbox === 'append') out.push(...topic(INBOX_PREFIX, 'prefixed', 'write', 'create'));
  if (profile.inbox === 'process') {
    out.push(...topic(INBOX_PREFIX, 'prefixed', 'read', 'write', 'create'), ...grant(p, 'group', `ionflux-${service}-processor`, 'prefixed', 'read'));
    // Another inbox's processor keeps its markers and versions in topics of its own (`…-<inbox>`).
    for (const s of profile.stateWrite ?? []) out.push(...topic(`${topics.state(s)}-`, 'prefixed', 'read', 'write', 'create'));
  }
  for (const d of profile.deadLetters ?? []) out.push(...topic(topics.deadLetter(d), 'literal', 'write', 'create'));
  // Approval releases re-send the kept command to its service's topic.
  if (profile.sendsCommands) out.push(...topic('ionflux.cmd.', 'prefixed', 'write'));
  if (profile.sendsOwnCommands) for (const c of commands) out.push(...topic(topics.command(c), 'literal', 'write'));
  // Its readers' throwaway groups (`<principal>.reader-<uuid>`) and its own named groups.
  out.push(...grant(p, 'group', `${p}.`, 'prefixed', 'read'));
  for (const g of profile.groups ?? []) out.push(...grant(p, 'group', g, 'prefixed', 'read'));
  // Transactional ids are `ionflux-<service>-<instance>` (and further suffixes per lane).
  out.push(...grant(p, 'transactional_id', `ionflux-${service}`, 'prefixed', 'write', 'describe'));
  return dedupe(out);
}

/**
 * Infrastructure that keeps its own state in Kafka: docker-compose's Confluent schema registry
 * stores schemas in `_schemas` and elects its leader in the `schema-registry` group.
 */
export function infraPlans(): AclBinding[] {
  const p = SCHEMA_REGISTRY_PRINCIPAL;
  return [...grant(p, 'topic', '_schemas', 'literal', 'read', 'write', 'create', 'describe_configs'), ...grant(p, 'group', 'schema-registry', 'prefixed', 'read')];
}

/** The event sources whose workspace topics an agent reads: vendors, command services, the workspace's generic endpoints. */
export function workspaceSources(workspaceId: string, input: PlanInput): string[] {
  const generic = input.genericSources.filter((g) => g.workspaceId === workspaceId).map((g) => g.source);
  return [...new Set([...VENDOR_SOURCES, ...input.commandIds, ...generic])].sort();
}

/**
 * An agent of one workspace: writes commands only to its workspace's command topics, reads that
 * workspace's topics and its own outputs topic, joins only groups under its own name. It cannot
 * write `ionflux.cmd.<service>` (admins and services), nor any state, platform, audit or dead-letter topic.
 */
export function agentPlan(agentId: string, workspaceId: string, input: PlanInput): AclBinding[] {
  const p = agentPrincipal(agentId, workspaceId);
  const out: AclBinding[] = [];
  for (const c of input.agentCommandIds) out.push(...grant(p, 'topic', topics.workspaceCommand(c, workspaceId), 'literal', 'write'));
  for (const s of workspaceSources(workspaceId, input)) out.push(...grant(p, 'topic', `ionflux.${s}.ws_${workspaceId}.`, 'prefixed', 'read'));
  out.push(...grant(p, 'topic', topics.agentOutputs(agentId, workspaceId), 'literal', 'read', 'write'));
  out.push(...grant(p, 'group', `${p}.`, 'prefixed', 'read'));
  return dedupe(out);
}

/** Topics an agent needs before its first command (it may not create topics): command, outcome and outputs topics. */
export function agentTopics(agentId: string, workspaceId: string, input: PlanInput): string[] {
  return [
    ...input.agentCommandIds.flatMap((c) => [topics.workspaceCommand(c, workspaceId), topics.event(c, workspaceId, 'command', 'outcomes')]),
    topics.agentOutputs(agentId, workspaceId),
  ];
}

function dedupe(bindings: AclBinding[]): AclBinding[] {
  const seen = new Set<string>();
  return bindings.filter((b) => {
    const k = `${b.resource}|${b.pattern}|${b.name}|${b.operation}`;
    return !seen.has(k) && (seen.add(k), true);
  });
}

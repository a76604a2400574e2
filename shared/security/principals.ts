import { assertSegment, assertWorkspaceId } from '../ids.ts';

/**
 * Who talks to Kafka (docs/security.md): one SCRAM principal per service, one admin for the CLI,
 * and one per (agent, workspace). Kafka names them `User:<name>`.
 */
export const ADMIN_PRINCIPAL = 'ionflux-admin';
/** The broker's own principal (inter-broker listener); a super user like the admin. */
export const BROKER_PRINCIPAL = 'ionflux-broker';
/** docker-compose's Confluent schema registry (its schemas live in Kafka). */
export const SCHEMA_REGISTRY_PRINCIPAL = 'ionflux-schema-registry';

/** Event sources the webhook ingester publishes for vendors (generic endpoints add their own). */
export const VENDOR_SOURCES = ['shopify', 'tiktok', 'email', 'whatsapp'] as const;

/**
 * What each service does on Kafka beyond what running command services implies (see
 * acl-plan.ts: a command service reads `ionflux.cmd.<svc>` and `ionflux.cmd.<svc>.ws_*`, writes
 * its outcomes and events `ionflux.<svc>.*`, agents' outputs, approvals, connection states, its
 * command states, audit and its dead letters).
 */
export interface ServiceProfile {
  /** Connector ids it runs, each on `ionflux.cmd.<id>`; `*` = every catalog connector no other service runs. */
  commands: string[];
  /** Event sources it publishes besides its commands' own (`ionflux.<source>.ws_*`). */
  sources?: readonly string[];
  /** Writes the generic endpoints' sources too (the ingester). */
  genericSources?: boolean;
  /** `ionflux.internal.<source>` it writes / reads. */
  internalWrite?: readonly string[];
  internalRead?: readonly string[];
  /** `ionflux.state.<name>` it writes (and reads) / only reads. */
  stateWrite?: string[];
  stateRead?: string[];
  /** Dead-letter topics besides its commands' (`ionflux.dlq.<name>`). */
  deadLetters?: string[];
  /** Sends commands to any service (approval releases on ionflux.cmd.<service>). */
  sendsCommands?: boolean;
  /** Sends commands to its own command topics (an HTTP API that turns requests into commands). */
  sendsOwnCommands?: boolean;
  /** The ingest inbox (`ionflux.inbox.webhooks`): appends to it, or appends and processes it. */
  inbox?: 'append' | 'process';
  /** Consumer groups besides `ionflux-<command>-worker` and its own prefix, as prefixes. */
  groups?: string[];
}

/** Each deployable under services/ (the CLI acts as the admin). */
export const SERVICES: Record<string, ServiceProfile> = {
  'webhook-ingester': {
    commands: [],
    sources: VENDOR_SOURCES,
    genericSources: true,
    internalWrite: VENDOR_SOURCES,
    stateWrite: ['webhook-deliveries', 'entity-versions'],
    stateRead: ['links'],
    deadLetters: ['webhook-ingester'],
    // Its edges append deliveries; its processors consume them in group ionflux-webhook-ingester-processor.
    inbox: 'process',
  },
  'connector-worker': { commands: ['*'], sendsCommands: true },
  'llm-orchestrator': { commands: ['llm'], stateWrite: ['llm-spend'] },
  // POST /v1/emails/send turns requests into commands on ionflux.cmd.email; links platform SendGrid accounts.
  'email-dispatcher': { commands: ['email'], sendsOwnCommands: true, internalRead: ['email'], stateWrite: ['email-suppressions', 'email-units', 'links'], groups: ['ionflux-email-'] },
  // Its lifecycle consumer and the per-connection owners run in groups `ionflux-tiktok-sync-*`.
  'tiktok-sync': { commands: ['tiktok'], internalRead: ['tiktok'], stateWrite: ['links', 'oauth-claims', 'tiktok-connections', 'tiktok-publishes', 'tiktok-videos'], groups: ['ionflux-tiktok-sync-'] },
  // Polled entities go through the ingest inbox, so webhooks and polls share one writer of events.
  'shopify-sync': { commands: ['shopify'], inbox: 'append', internalRead: ['shopify'], stateWrite: ['links', 'oauth-claims', 'shopify-connections', 'shopify-sync'], groups: ['ionflux-shopify-sync-'] },
};

/** `ionflux-<service>`: the principal a service runs as. */
export const servicePrincipal = (service: string) => `ionflux-${service}`;

const AGENT = /^agent\.([a-z0-9][a-z0-9_-]{0,62})\.ws_([a-z0-9][a-z0-9-]{0,62})$/;

/** `agent.<agent>.ws_<workspace>`, mirroring its outputs topic `ionflux.agent.<agent>.ws_<workspace>.outputs`. */
export function agentPrincipal(agentId: string, workspaceId: string): string {
  return `agent.${assertSegment('agent', agentId)}.ws_${assertWorkspaceId(workspaceId)}`;
}

export function parseAgentPrincipal(name: string): { agentId: string; workspaceId: string } | null {
  const m = AGENT.exec(name);
  return m ? { agentId: m[1]!, workspaceId: m[2]! } : null;
}

export type PrincipalKind = { kind: 'admin' | 'broker' | 'infra' } | { kind: 'service'; service: string } | { kind: 'agent'; agentId: string; workspaceId: string } | { kind: 'other' };

export function principalKind(name: string): PrincipalKind {
  if (name === ADMIN_PRINCIPAL) return { kind: 'admin' };
  if (name === BROKER_PRINCIPAL) return { kind: 'broker' };
  if (name === SCHEMA_REGISTRY_PRINCIPAL) return { kind: 'infra' };
  const service = Object.keys(SERVICES).find((s) => servicePrincipal(s) === name);
  if (service) return { kind: 'service', service };
  const agent = parseAgentPrincipal(name);
  return agent ? { kind: 'agent', ...agent } : { kind: 'other' };
}

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { KafkaTable } from '../../shared/bus/table/table.ts';
import { createHubClient } from '../../shared/commands/client.ts';
import { wsConnectorKey, openWorkspaceConnectors, type WorkspaceConnector } from '../../shared/commands/state.ts';
import { resolveCredentials } from '../../shared/connectors/credentials.ts';
import { CATEGORIES } from '../../shared/connectors/manifest.ts';
import { catalog } from '../../shared/connectors/catalog/index.ts';
import { loadConnectors } from '../../shared/connectors/registry.ts';
import type { ConnectorSpec } from '../../shared/connectors/types.ts';
import { assertWorkspaceId } from '../../shared/ids.ts';
import { createLogger } from '../../shared/logger.ts';
import { redactString } from '../../shared/redact.ts';
import { createSecretStore, type SecretStore } from '../../shared/secrets/index.ts';
import { parse, UsageError } from './args.ts';
import { cliContext, cliEnv } from './context.ts';
import { kafkaAuth } from '../../shared/config.ts';
import type { CliCommand } from './main.ts';

const USAGE = `ionflux integrations list [--category <c>] [--workspace <w> [--connected]] [--json]
       ionflux integrations test <connector> --workspace <w> [--json]
       ionflux integrations run <connector> <action> --workspace <w> [--param k=v ...] [--params-json '{...}'] [--agent <id>] [--timeout <s>] [--json]`;

/** Every connector of the hub (the catalog) plus those in EXTRA_CONNECTORS_DIR, if set. */
export async function cliConnectors(): Promise<Map<string, ConnectorSpec>> {
  const all = new Map<string, ConnectorSpec>(catalog);
  const extra = process.env.EXTRA_CONNECTORS_DIR;
  if (extra) for (const [id, c] of await loadConnectors(pathToFileURL(`${resolve(extra)}/`))) all.set(id, c);
  return all;
}

export function findConnector(all: Map<string, ConnectorSpec>, id: string | undefined, usage: string): ConnectorSpec {
  const c = id ? all.get(id) : undefined;
  if (!c) throw new UsageError(`${id ? `unknown connector "${id}"` : 'which connector?'} (known: ${[...all.keys()].join(', ')})\nusage: ${usage}`);
  return c;
}

export const requireWorkspace = (w: string | undefined, usage: string): string => {
  if (!w) throw new UsageError(`--workspace is required\nusage: ${usage}`);
  return assertWorkspaceId(w);
};

/** Who did it, for audit records and approval decisions. */
export const cliActor = () => `cli:${process.env.USER ?? process.env.USERNAME ?? 'unknown'}`;

/** One result: a JSON line with --json, else the human text. */
export const emit = (json: boolean | undefined, row: unknown, text: string) => process.stdout.write(json ? `${JSON.stringify(row)}\n` : `${text}\n`);

/**
 * `connected` needs both: credentials that resolve (workspace or platform) and no table entry
 * saying otherwise. The worker marks `needs_reauth` on a vendor 401, `disconnect` marks `disconnected`.
 */
export async function connectionState(store: SecretStore, table: KafkaTable<WorkspaceConnector>, c: ConnectorSpec, ws: string): Promise<string> {
  const entry = table.get(wsConnectorKey(ws, c.manifest.id));
  if (entry?.connection === 'needs_reauth' || entry?.connection === 'disconnected') return entry.connection;
  const creds = await resolveCredentials(store, c.manifest, ws);
  return creds.ok ? 'connected' : 'not_connected';
}

/** Runs a connector's healthcheck; a throw or a hang counts as a failed check, not a crash. */
export async function healthcheck(c: ConnectorSpec, credentials: Record<string, string>): Promise<{ ok: boolean; detail?: string }> {
  if (!c.healthcheck) return { ok: true, detail: 'no healthcheck for this connector' };
  try {
    return await c.healthcheck(credentials, AbortSignal.timeout(15_000));
  } catch (e) {
    return { ok: false, detail: redactString((e as Error).message) };
  }
}

/** `--param k=v`: the value as JSON when it parses (numbers, booleans, objects), else the string. */
function paramsFrom(pairs: string[], json: string | undefined): Record<string, unknown> {
  let out: Record<string, unknown> = {};
  if (json) {
    try {
      out = JSON.parse(json) as Record<string, unknown>;
    } catch (e) {
      throw new UsageError(`--params-json is not JSON: ${(e as Error).message}`);
    }
    if (!out || typeof out !== 'object' || Array.isArray(out)) throw new UsageError('--params-json must be a JSON object');
  }
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new UsageError(`--param ${p}: expected key=value`);
    const raw = p.slice(i + 1);
    try {
      out[p.slice(0, i)] = JSON.parse(raw);
    } catch {
      out[p.slice(0, i)] = raw;
    }
  }
  return out;
}

async function list(args: string[]): Promise<number> {
  const { values } = parse(args, { category: { type: 'string' }, workspace: { type: 'string' }, connected: { type: 'boolean' }, json: { type: 'boolean' } }, USAGE);
  if (values.category && !(CATEGORIES as readonly string[]).includes(values.category)) throw new UsageError(`unknown category ${values.category} (one of ${CATEGORIES.join(', ')})`);
  if (values.connected && !values.workspace) throw new UsageError(`--connected needs --workspace\nusage: ${USAGE}`);
  const ws = values.workspace ? assertWorkspaceId(values.workspace) : undefined;
  const connectors = [...(await cliConnectors()).values()].filter((c) => !values.category || c.manifest.category === values.category);
  const states = new Map<string, string>();
  if (ws) {
    const ctx = cliContext();
    const store = createSecretStore(ctx.env);
    const table = await openWorkspaceConnectors(ctx);
    try {
      for (const c of connectors) states.set(c.manifest.id, await connectionState(store, table, c, ws));
    } finally {
      await Promise.all([table.close(), store.close?.()]);
      await ctx.close();
    }
  }
  const shown = connectors.filter((c) => !values.connected || states.get(c.manifest.id) === 'connected');
  for (const category of CATEGORIES) {
    const group = shown.filter((c) => c.manifest.category === category);
    if (group.length && !values.json) process.stdout.write(`${category}\n`);
    for (const { manifest: m } of group) {
      const row = { id: m.id, name: m.name, category, authType: m.authType, riskLevel: m.riskLevel, ...(ws ? { workspace: ws, connection: states.get(m.id) } : {}) };
      emit(values.json, row, `  ${m.id.padEnd(16)} ${m.name.padEnd(28)} auth=${m.authType.padEnd(15)} risk=${m.riskLevel.padEnd(9)}${ws ? states.get(m.id) : ''}`.trimEnd());
    }
  }
  if (!shown.length && !values.json) process.stdout.write(values.connected ? `no connected integrations for ${ws}\n` : 'no integrations match\n');
  return 0;
}

async function test(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { workspace: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  const c = findConnector(await cliConnectors(), positionals[0], USAGE);
  const ws = requireWorkspace(values.workspace, USAGE);
  const store = createSecretStore(cliEnv());
  try {
    const creds = await resolveCredentials(store, c.manifest, ws);
    const result = creds.ok ? await healthcheck(c, creds.values) : { ok: false, detail: `missing credentials: ${creds.missing.join(', ')}. ${c.manifest.authHelp}` };
    const where = creds.ok ? ` (credentials: ${creds.source})` : '';
    emit(values.json, { connector: c.manifest.id, workspace: ws, ...result }, result.ok ? `ok: ${c.manifest.id} for ${ws}${where}` : `failed: ${c.manifest.id} for ${ws}: ${result.detail ?? 'healthcheck failed'}`);
    return result.ok ? 0 : 1;
  } finally {
    await store.close?.();
  }
}

/** A real command through the same client agents use; exit 0 succeeded, 3 awaiting approval, 1 failed. */
async function run(args: string[]): Promise<number> {
  const o = { workspace: { type: 'string' }, param: { type: 'string', multiple: true }, 'params-json': { type: 'string' }, agent: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' } } as const;
  const { values, positionals } = parse(args, o, USAGE);
  const [service, action] = positionals;
  if (!service || !action) throw new UsageError(`expected <connector> <action>\nusage: ${USAGE}`);
  const ws = requireWorkspace(values.workspace, USAGE);
  const known = (await cliConnectors()).get(service);
  // Dedicated services (llm, shopify, ...) may answer actions the CLI has no manifest for.
  if (known && !known.manifest.actions[action]) throw new UsageError(`${service} has no action ${action} (actions: ${Object.keys(known.manifest.actions).join(', ')})`);
  if (!known) process.stderr.write(`note: no connector ${service} is installed here; sending to ionflux.cmd.${service} anyway\n`);
  const params = paramsFrom(values.param ?? [], values['params-json']);
  const timeoutS = Number(values.timeout ?? 60);
  if (!(timeoutS > 0)) throw new UsageError('--timeout must be a positive number of seconds');
  const env = cliEnv();
  const logger = createLogger({ service: 'ionflux-cli', level: 'warn', destination: process.stderr });
  const client = await createHubClient({ brokers: env.KAFKA_BROKERS, auth: kafkaAuth(env), registryUrl: env.SCHEMA_REGISTRY_URL, clientId: 'ionflux-cli', logger });
  try {
    const { event, ...outcome } = await client.send({ workspace_id: ws, agent_id: values.agent ?? 'cli', service, action, params }, { timeoutMs: timeoutS * 1000 });
    const row = { ...outcome, event_id: event.event_id, event_type: event.event_type };
    process.stdout.write(values.json ? `${JSON.stringify(row)}\n` : `${JSON.stringify(row, null, 2)}\n`);
    if (outcome.status === 'awaiting_approval') {
      // With --json stdout stays one JSON line; the hint goes to stderr.
      (values.json ? process.stderr : process.stdout).write(`approval ${outcome.approval_id} is pending: ionflux approvals approve ${outcome.approval_id} [--reason ...] (or deny)\n`);
      return 3;
    }
    return outcome.status === 'succeeded' ? 0 : 1;
  } finally {
    await client.close();
  }
}

export const integrationsCommand: CliCommand = {
  summary: 'integrations list|test|run   connectors by category and connection state; healthcheck; send a command',
  async run(args) {
    const [sub, ...rest] = args;
    if (sub === 'list') return list(rest);
    if (sub === 'test') return test(rest);
    if (sub === 'run') return run(rest);
    throw new UsageError(`usage: ${USAGE}`);
  },
};

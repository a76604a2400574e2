import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { topics } from '../../shared/bus/topics.ts';
import type { ConnectorSpec } from '../../shared/connectors/types.ts';
import { parseEnv } from '../../shared/config.ts';
import { HubError } from '../../shared/errors.ts';
import { auditRecord } from '../../shared/commands/audit.ts';
import { createEventCodec } from '../../shared/events/codec.ts';
import { createRegistry } from '../../shared/events/registry.ts';
import { assertSegment, assertWorkspaceId } from '../../shared/ids.ts';
import { registerSecret } from '../../shared/redact.ts';
import { agentPlan, agentTopics, servicePlan, workspaceSources } from '../../shared/security/acl-plan.ts';
import { agentPrincipal, principalKind, SCHEMA_REGISTRY_PRINCIPAL, SERVICES, servicePrincipal } from '../../shared/security/principals.ts';
import { planInput, syncAcls } from '../../shared/security/sync.ts';
import { setupVault } from '../../shared/security/vault-setup.ts';
import { createSecretStore, secretPaths } from '../../shared/secrets/index.ts';
import { llmEnvShape } from '../llm-orchestrator/connector/config.ts';
import { parse, UsageError } from './args.ts';
import { cliContext, cliEnv } from './context.ts';
import { cliActor, cliConnectors, emit } from './integrations.ts';
import type { CliCommand } from './main.ts';

const USAGE = `ionflux principals create agent <agent-id> --workspace <w> [--json]
       ionflux principals list [--json]
       ionflux principals revoke agent <agent-id> --workspace <w> [--json]
       ionflux principals sync [--credentials-dir <dir>] [--json]
       ionflux principals vault --tokens-dir <dir>   (with a root VAULT_TOKEN)`;

const newPassword = () => randomBytes(24).toString('base64url');

/** The admin's view of who may use the broker; every command needs the admin's credentials. */
export const principalsCommand: CliCommand = {
  summary: 'principals create agent <id> --workspace <w> | list | revoke agent <id> --workspace <w> | sync   Kafka principals and their ACLs',
  async run(args) {
    const [sub, ...rest] = args;
    if (sub === 'create') return create(rest);
    if (sub === 'list') return list(rest);
    if (sub === 'revoke') return revoke(rest);
    if (sub === 'sync') return sync(rest);
    if (sub === 'vault') return vault(rest);
    throw new UsageError(`usage: ${USAGE}`);
  },
};

function agentArgs(args: string[]) {
  const { values, positionals } = parse(args, { workspace: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  if (positionals[0] !== 'agent' || !positionals[1] || positionals.length !== 2 || !values.workspace) throw new UsageError(`usage: ${USAGE}`);
  return { agentId: assertSegment('agent', positionals[1]), workspaceId: assertWorkspaceId(values.workspace), json: values.json };
}

/**
 * A new agent principal: SCRAM credentials (kept in the secret store, printed once), the topics it
 * needs (it may not create any), its ACLs and an audit entry. An existing one is never overwritten.
 */
async function create(args: string[]): Promise<number> {
  const { agentId, workspaceId, json } = agentArgs(args);
  const ctx = cliContext();
  const store = createSecretStore(ctx.env);
  try {
    const name = agentPrincipal(agentId, workspaceId);
    const security = ctx.security();
    if ((await security.listScramUsers()).some((u) => u.name === name)) {
      process.stderr.write(`principal ${name} exists; revoke it first to issue new credentials (ionflux principals revoke agent ${agentId} --workspace ${workspaceId})\n`);
      return 1;
    }
    const input = await planInput(ctx.bus, (await cliConnectors()).values());
    const password = newPassword();
    registerSecret(password);
    const mechanism = 'scram-sha-256';
    // Encoded before anything changes (it needs the registry): a failure here leaves nothing made.
    const auditEntry = await audit(ctx.env.SCHEMA_REGISTRY_URL, 'principal_created', workspaceId, agentId);
    await store.put(secretPaths.agentPrincipal(workspaceId, agentId), { username: name, password, mechanism }, { labels: { kind: 'kafka-principal', workspace: workspaceId } });
    await ctx.bus.ensureTopics(agentTopics(agentId, workspaceId, input));
    await security.createAcls(agentPlan(agentId, workspaceId, input));
    // Credentials last: the principal can do nothing before its ACLs and topics exist.
    await security.upsertScramUser(name, password);
    // From here the principal exists and a retry is refused: its password is shown whatever happens.
    const auditFailed = await ctx.bus.publish(auditEntry).then(() => undefined, (e: unknown) => e as Error);
    const row = {
      principal: name,
      workspace_id: workspaceId,
      agent_id: agentId,
      brokers: ctx.env.KAFKA_BROKERS.join(','),
      sasl_mechanism: mechanism,
      username: name,
      password,
      command_topics: Object.fromEntries(input.agentCommandIds.map((c) => [c, topics.workspaceCommand(c, workspaceId)])),
      reads: workspaceSources(workspaceId, input).map((s) => `ionflux.${s}.ws_${workspaceId}.*`),
      outputs_topic: topics.agentOutputs(agentId, workspaceId),
      consumer_group_prefix: `${name}.`,
    };
    emit(
      json,
      row,
      [
        `agent principal ${name} created. Its password is shown only this once:`,
        `  KAFKA_BROKERS=${row.brokers}`,
        '  KAFKA_SASL_MECHANISM=scram-sha-256',
        `  KAFKA_SASL_USERNAME=${name}`,
        `  KAFKA_SASL_PASSWORD=${password}`,
        `sends commands to: ${Object.values(row.command_topics).join(', ')}`,
        `reads: ${row.reads.join(', ')} and ${row.outputs_topic} (it also writes that one)`,
        `consumer groups: ${row.consumer_group_prefix}<anything>`,
      ].join('\n'),
    );
    if (auditFailed) {
      process.stderr.write(`principals create: ${name} exists and works, but its audit record was not written (${auditFailed.message})\n`);
      return 1;
    }
    return 0;
  } finally {
    await store.close?.();
    await ctx.close();
  }
}

async function revoke(args: string[]): Promise<number> {
  const { agentId, workspaceId, json } = agentArgs(args);
  const ctx = cliContext();
  const store = createSecretStore(ctx.env);
  try {
    const name = agentPrincipal(agentId, workspaceId);
    const security = ctx.security();
    // The broker deletes a user that does not exist without a word: a mistyped id would be
    // reported (and audited) as revoked while the real principal stays. Left-over ACLs of one
    // whose credentials are gone (a revoke cut short) are still removed.
    const [users, left] = await Promise.all([security.listScramUsers(), security.listAcls(name)]);
    if (!users.some((u) => u.name === name) && !left.length) {
      process.stderr.write(`principals revoke: no principal ${name} (agent ${agentId} of workspace ${workspaceId}); nothing revoked. ionflux principals list shows them\n`);
      return 1;
    }
    // Credentials first: nobody can log in as it from now on; its ACLs then stop sessions still open.
    await security.deleteScramUser(name);
    const acls = await security.listAcls(name);
    if (acls.length) await security.deleteAcls(acls);
    await store.delete(secretPaths.agentPrincipal(workspaceId, agentId));
    await ctx.bus.publish(await audit(ctx.env.SCHEMA_REGISTRY_URL, 'principal_revoked', workspaceId, agentId));
    emit(json, { principal: name, revoked: true, acls_removed: acls.length }, `revoked ${name} (${acls.length} ACLs removed)`);
    return 0;
  } finally {
    await store.close?.();
    await ctx.close();
  }
}

async function list(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' } }, USAGE);
  const ctx = cliContext();
  try {
    const security = ctx.security();
    const [users, acls] = await Promise.all([security.listScramUsers(), security.listAcls()]);
    for (const u of users) {
      const k = principalKind(u.name);
      const count = acls.filter((a) => a.principal === u.name).length;
      const scope = k.kind === 'agent' ? `workspace ${k.workspaceId}, agent ${k.agentId}` : k.kind === 'service' ? `service ${k.service}` : k.kind === 'infra' ? 'schema registry' : k.kind === 'admin' || k.kind === 'broker' ? 'super user' : 'not managed by the hub';
      emit(values.json, { principal: u.name, kind: k.kind, ...(k.kind === 'agent' ? { workspace_id: k.workspaceId, agent_id: k.agentId } : {}), ...(k.kind === 'service' ? { service: k.service } : {}), mechanisms: u.mechanisms, acls: count }, `${u.name.padEnd(40)} ${k.kind.padEnd(8)} ${scope}${k.kind === 'admin' || k.kind === 'broker' ? '' : `, ${count} ACLs`}`);
    }
    return 0;
  } finally {
    await ctx.close();
  }
}

/**
 * Every service principal (its SCRAM password from `<dir>/<principal>.password`, created there
 * with mode 0600 when missing) and every managed ACL, as the plan says. `make up` and `make test`
 * run this against the broker they start; it is safe to repeat.
 */
async function sync(args: string[]): Promise<number> {
  const { values } = parse(args, { 'credentials-dir': { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  const ctx = cliContext();
  try {
    const security = ctx.security();
    const dir = values['credentials-dir'];
    const services = Object.keys(SERVICES);
    if (dir) {
      if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
      for (const s of services) {
        const file = join(dir, `${servicePrincipal(s)}.password`);
        if (!existsSync(file)) writeFileSync(file, newPassword(), { mode: 0o600 });
        const password = readFileSync(file, 'utf8').trim();
        registerSecret(password);
        await security.upsertScramUser(servicePrincipal(s), password);
      }
      // docker-compose's schema registry, when its password is there (deploy/compose/init-secrets.sh).
      const registry = join(dir, `${SCHEMA_REGISTRY_PRINCIPAL}.password`);
      if (existsSync(registry)) await security.upsertScramUser(SCHEMA_REGISTRY_PRINCIPAL, readFileSync(registry, 'utf8').trim());
    }
    const input = await planInput(ctx.bus, (await cliConnectors()).values());
    // Agents may not create topics: a connector added since an agent was created gets its
    // command and outcome topics for that agent's workspace here.
    const agents = (await security.listScramUsers()).map((u) => principalKind(u.name)).filter((k) => k.kind === 'agent');
    await ctx.bus.ensureTopics(agents.flatMap((a) => agentTopics(a.agentId, a.workspaceId, input)));
    const result = await syncAcls(security, input);
    const bindings = services.reduce((n, s) => n + servicePlan(s, input).length, 0);
    emit(values.json, { services, credentials: dir ? 'set' : 'unchanged', ...result }, `principals: ${services.length} services (${bindings} ACLs)${dir ? `, passwords in ${dir}` : ''}; ACLs created ${result.created}, removed ${result.deleted}, unchanged ${result.kept}`);
    return 0;
  } finally {
    await ctx.close();
  }
}

/** OpenBao policies and a token per service and for the admin (shared/security/vault-setup.ts). */
async function vault(args: string[]): Promise<number> {
  const { values } = parse(args, { 'tokens-dir': { type: 'string' } }, USAGE);
  const env = cliEnv();
  if (!values['tokens-dir'] || !env.VAULT_TOKEN) throw new UsageError(`--tokens-dir and a VAULT_TOKEN allowed to write policies are needed\nusage: ${USAGE}`);
  // The orchestrator's own providers, as it reads them from the same variable.
  const llmExtraProviders = Object.keys(parseEnv(z.object({ LLM_EXTRA_PROVIDERS: llmEnvShape.LLM_EXTRA_PROVIDERS }), process.env).LLM_EXTRA_PROVIDERS);
  const names = await setupVault({ addr: env.VAULT_ADDR, rootToken: env.VAULT_TOKEN, mount: env.VAULT_KV_MOUNT, dir: values['tokens-dir'], policy: { llmExtraProviders } });
  process.stdout.write(`OpenBao: ${names.length} policies and tokens (${values['tokens-dir']}); approval signing key present\n`);
  return 0;
}

/**
 * Brings the ACLs in line with the links (a new generic endpoint's source). A broker without an
 * authorizer (not the SASL one `make up` starts) has no ACLs to change: said on stderr, not fatal.
 */
export async function grantWorkspaceSources(ctx: ReturnType<typeof cliContext>, connectors: Iterable<ConnectorSpec>): Promise<void> {
  try {
    await syncAcls(ctx.security(), await planInput(ctx.bus, connectors));
  } catch (e) {
    if (!(e instanceof HubError && e.code === 'security_disabled')) throw e;
    process.stderr.write(`note: ${e.message}; no ACLs changed\n`);
  }
}

async function audit(registryUrl: string, kind: 'principal_created' | 'principal_revoked', workspaceId: string, agentId: string) {
  const codec = await createEventCodec(createRegistry(registryUrl));
  return auditRecord(codec, 'cli', { kind, workspace_id: workspaceId, connector: 'kafka', action: kind === 'principal_created' ? 'principals.create' : 'principals.revoke', actor: cliActor(), detail: agentPrincipal(agentId, workspaceId) });
}

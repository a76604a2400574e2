import { readFile } from 'node:fs/promises';
import { KafkaTable, jsonValue } from '../../shared/bus/table/table.ts';
import { openWorkspaceConnectors, wsConnectorKey } from '../../shared/commands/state.ts';
import { emailSettingsSchema, templateDigest, templateSchema } from '../../shared/connectors/catalog/email.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { apiTokenPath, newApiToken } from '../email-dispatcher/api-auth.ts';
import { SUPPRESSIONS_TOPIC, suppressionKey, suppressionSchema, type Suppression } from '../email-dispatcher/suppressions.ts';
import { parse, UsageError } from './args.ts';
import { cliContext, cliEnv } from './context.ts';
import { cliActor, emit, requireWorkspace } from './integrations.ts';
import type { CliCommand } from './main.ts';

const USAGE = `ionflux email templates approve --workspace <w> --file <template.json>   (the file: {"id","subject","text","html"})
       ionflux email templates list|revoke --workspace <w> [<template-id>]
       ionflux email tokens create|revoke --workspace <w>
       ionflux email suppressions list|add|remove --workspace <w> [<address>]   [--json]`;

/** The template file's JSON; a file that cannot be read or parsed is a usage error naming it, not a stack trace. */
async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--file ${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})\nusage: ${USAGE}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--file ${file}: not JSON (${(e as Error).message})\nusage: ${USAGE}`);
  }
}

/** Pre-approved templates live in the workspace's email settings (ionflux.state.workspace-connectors, `<ws>:email`). */
async function templates(sub: string, args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { workspace: { type: 'string' }, file: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  const ws = requireWorkspace(values.workspace, USAGE);
  if (sub === 'approve' && !values.file) throw new UsageError(`--file is required\nusage: ${USAGE}`);
  if (sub === 'revoke' && positionals.length !== 1) throw new UsageError(`which template id?\nusage: ${USAGE}`);
  let template;
  if (sub === 'approve') {
    const parsed = templateSchema.safeParse(await readJsonFile(values.file!));
    if (!parsed.success) throw new UsageError(`${values.file}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; ')}`);
    template = parsed.data;
  }
  const ctx = cliContext();
  const table = await openWorkspaceConnectors(ctx);
  try {
    const key = wsConnectorKey(ws, 'email');
    const prev = table.get(key) ?? { settings: {}, updated_at: '' };
    const approved = { ...emailSettingsSchema.parse(prev.settings).approved_templates };
    if (sub === 'approve') approved[template!.id] = { digest: templateDigest(template!), approved_at: new Date().toISOString(), approved_by: cliActor() };
    if (sub === 'revoke') delete approved[positionals[0]!];
    if (sub !== 'list') await table.set(key, { ...prev, settings: { ...prev.settings, approved_templates: approved }, updated_at: new Date().toISOString() });
    for (const [id, a] of Object.entries(approved)) emit(values.json, { workspace: ws, template_id: id, ...a }, `${id}  sha256:${a.digest.slice(0, 16)}  approved ${a.approved_at} by ${a.approved_by}`);
    if (!Object.keys(approved).length && !values.json) process.stdout.write(`no pre-approved templates for ${ws}\n`);
    return 0;
  } finally {
    await table.close();
    await ctx.close();
  }
}

/** A workspace's token for POST /v1/emails/send: printed once, only its hash stored. */
async function tokens(sub: string, args: string[]): Promise<number> {
  const { values } = parse(args, { workspace: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  const ws = requireWorkspace(values.workspace, USAGE);
  // Where the running hub keeps secrets (.ionflux/hub.env when nothing is exported), as the dispatcher reads them.
  const store = createSecretStore(cliEnv());
  try {
    if (sub === 'revoke') {
      await store.delete(apiTokenPath(ws));
      emit(values.json, { workspace: ws, token: 'revoked' }, `email API token of ${ws} revoked`);
      return 0;
    }
    const { token, record } = newApiToken(ws);
    await store.put(apiTokenPath(ws), record, { labels: { workspace: ws, connector: 'email-api' } });
    emit(values.json, { workspace: ws, token }, `token: ${token}`);
    process.stderr.write('The token is shown only this once (the store keeps its hash). Send it as Authorization: Bearer <token>.\n');
    return 0;
  } finally {
    await store.close?.();
  }
}

async function suppressions(sub: string, args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { workspace: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  const ws = requireWorkspace(values.workspace, USAGE);
  if (sub !== 'list' && !positionals[0]?.includes('@')) throw new UsageError(`which address?\nusage: ${USAGE}`);
  const ctx = cliContext();
  const table = new KafkaTable<Suppression>({ ...ctx, topic: SUPPRESSIONS_TOPIC, parse: jsonValue((v) => suppressionSchema.parse(v)) });
  await table.start(60_000);
  try {
    if (sub === 'add') await table.set(suppressionKey(ws, positionals[0]!), { reason: 'unsubscribed', at: Date.now(), source: 'cli', detail: cliActor() });
    if (sub === 'remove') await table.delete(suppressionKey(ws, positionals[0]!));
    const mine = table.entries().filter(([k]) => k.startsWith(`${ws}:`));
    for (const [k, s] of mine) emit(values.json, { workspace: ws, address: k.slice(ws.length + 1), ...s }, `${k.slice(ws.length + 1)}  ${s.reason}  ${new Date(s.at).toISOString()}  (${s.source})`);
    if (!mine.length && !values.json) process.stdout.write(`no suppressed addresses for ${ws}\n`);
    return 0;
  } finally {
    await table.close();
    await ctx.close();
  }
}

export const emailCommand: CliCommand = {
  summary: `email templates|tokens|suppressions ...   pre-approved templates, HTTP API tokens, suppressed addresses`,
  async run([group, sub, ...rest]) {
    if (group === 'templates' && ['approve', 'list', 'revoke'].includes(sub ?? '')) return templates(sub!, rest);
    if (group === 'tokens' && ['create', 'revoke'].includes(sub ?? '')) return tokens(sub!, rest);
    if (group === 'suppressions' && ['list', 'add', 'remove'].includes(sub ?? '')) return suppressions(sub!, rest);
    throw new UsageError(`usage: ${USAGE}`);
  },
};

import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { auditRecord } from '../../shared/commands/audit.ts';
import { openWorkspaceConnectors, WORKSPACE_POLICY, wsConnectorKey, type WorkspaceConnector } from '../../shared/commands/state.ts';
import type { ConnectorSpec } from '../../shared/connectors/types.ts';
import { createEventCodec } from '../../shared/events/codec.ts';
import { createRegistry } from '../../shared/events/registry.ts';
import { createSecretStore, secretPaths } from '../../shared/secrets/index.ts';
import { parse, UsageError } from './args.ts';
import { cliContext } from './context.ts';
import { connectShopify } from './connect-shopify.ts';
import { connectTikTok } from './connect-tiktok.ts';
import { cliActor, cliConnectors, emit, findConnector, healthcheck, requireWorkspace } from './integrations.ts';
import type { CliCommand } from './main.ts';

const CONNECT = 'ionflux connect <connector> --workspace <w> [--field k=v ...] [--json]';
const DISCONNECT = 'ionflux disconnect <connector> --workspace <w> [--json]';
const WEBHOOKS = 'ionflux webhooks add-url --workspace <w> <url> [--preapprove] | webhooks remove-url --workspace <w> <url>';
const WORKSPACE = 'ionflux workspace set --workspace <w> financial-actions on|off';

/** OAuth connectors are expected to expose this; none exists yet, so it is read loosely. */
type OAuthCapable = ConnectorSpec & { oauth?: { authorizationUrl(o: { workspaceId: string; state: string }): string } };

/** A terminal prompt that echoes nothing: raw mode, read up to Enter. Ctrl-C aborts. */
function readHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve) => {
    let value = '';
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\u0003' || ch === '\r' || ch === '\n' || ch === '\u0004') {
          stdin.off('data', onData);
          stdin.setRawMode(false);
          stdin.pause();
          process.stderr.write('\n');
          if (ch === '\u0003') process.exit(130);
          return resolve(value);
        }
        value = ch === '\u007f' || ch === '\b' ? value.slice(0, -1) : value + ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** Values for the fields not given by --field: hidden prompts on a TTY, else one line of stdin each. */
async function askFields(fields: string[], hint: (f: string) => string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  if (fields.length === 0) return out;
  if (process.stdin.isTTY) {
    for (const f of fields) out[f] = (await readHidden(`${f}${hint(f)}: `)).trim();
    return out;
  }
  const rl = createInterface({ input: process.stdin, terminal: false });
  const lines = rl[Symbol.asyncIterator]();
  for (const f of fields) out[f] = String((await lines.next()).value ?? '').trim();
  rl.close();
  process.stdin.pause();
  return out;
}

/** The Kafka clients, secret store, workspace-connectors table and codec these commands share. */
async function open() {
  const ctx = cliContext();
  const store = createSecretStore(ctx.env);
  const [table, codec] = await Promise.all([openWorkspaceConnectors(ctx), createEventCodec(createRegistry(ctx.env.SCHEMA_REGISTRY_URL))]);
  const setState = async (ws: string, connector: string, kind: 'connect' | 'disconnect') => {
    const key = wsConnectorKey(ws, connector);
    const { connection_detail: _, ...prev } = table.get(key) ?? { settings: {} };
    const next: WorkspaceConnector = { ...prev, connection: kind === 'connect' ? 'connected' : 'disconnected', updated_at: new Date().toISOString() };
    const audit = await auditRecord(codec, 'cli', { kind, workspace_id: ws, connector, actor: cliActor(), outcome: next.connection });
    // State and audit in one produce request: an admin never sees one without the other.
    await ctx.bus.publishAtomic([table.record(key, next), audit]);
    table.applyLocal(key, next);
  };
  const close = async () => {
    await Promise.all([table.close(), store.close?.()]);
    await ctx.close();
  };
  return { ctx, store, table, setState, close };
}

export const connectCommand: CliCommand = {
  summary: `${CONNECT.slice('ionflux '.length)}   validate and store a workspace's credentials (prompts without echo)`,
  async run(args) {
    if (args[0] === 'tiktok') return connectTikTok(args);
    if (args[0] === 'shopify') return connectShopify(args);
    const { values, positionals } = parse(args, { workspace: { type: 'string' }, field: { type: 'string', multiple: true }, json: { type: 'boolean' } }, CONNECT);
    const c: OAuthCapable = findConnector(await cliConnectors(), positionals[0], CONNECT);
    const ws = requireWorkspace(values.workspace, CONNECT);
    const m = c.manifest;
    if (m.authType === 'oauth') {
      if (!c.oauth) {
        process.stderr.write(`OAuth install is not supported for ${m.id} yet. ${m.authHelp}\n`);
        return 1;
      }
      const url = c.oauth.authorizationUrl({ workspaceId: ws, state: randomBytes(16).toString('hex') });
      emit(values.json, { connector: m.id, workspace: ws, authorization_url: url }, `Open this URL to authorize ${m.name} for ${ws}:\n  ${url}\nThe install completes on the OAuth callback; then check it with: ionflux integrations test ${m.id} --workspace ${ws}`);
      return 0;
    }
    const given: Record<string, string> = {};
    for (const kv of values.field ?? []) {
      const i = kv.indexOf('=');
      const k = kv.slice(0, i);
      // Not the text given: `--field whsec_...` is a credential typed where key=value was due (and base64 has '=').
      if (i <= 0 || !m.credentialFields.includes(k)) throw new UsageError(`--field: expected one of ${m.credentialFields.join(', ') || '(none)'} as key=value (what was given is not shown: it may be a credential)`);
      given[k] = kv.slice(i + 1);
    }
    const generates = (f: string) => m.id === 'webhook' && f === 'signing_secret';
    const asked = await askFields(m.credentialFields.filter((f) => !(f in given)), (f) => (generates(f) ? ' (empty: generate one)' : ''));
    const creds = { ...given, ...asked };
    let generated: string | undefined;
    for (const f of m.credentialFields) {
      if (!creds[f] && generates(f)) creds[f] = generated = `whsec_${randomBytes(32).toString('base64')}`;
      if (!creds[f]) throw new UsageError(`no value given for ${f}`);
    }
    // The webhook handler base64-decodes after the prefix; refuse a value it would sign with garbage.
    if (m.id === 'webhook' && !/^whsec_[A-Za-z0-9+/]{22,}={0,2}$/.test(creds.signing_secret ?? '')) {
      process.stderr.write('connect failed: signing_secret must look like whsec_<base64 of at least 16 bytes>; nothing stored\n');
      return 1;
    }
    const check = await healthcheck(c, creds);
    if (!check.ok) {
      process.stderr.write(`connect failed: ${m.id} healthcheck: ${check.detail ?? 'not ok'}; nothing stored\n`);
      return 1;
    }
    const s = await open();
    try {
      const path = secretPaths.workspace(ws, m.id);
      await s.store.put(path, creds, { labels: { workspace: ws, connector: m.id } });
      try {
        await s.setState(ws, m.id, 'connect');
      } catch (e) {
        // The credentials are live already: say so, and show a generated secret now or never.
        if (generated) process.stdout.write(`signing_secret: ${generated}\n`);
        process.stderr.write(`connect: the credentials are stored at ${path}${generated ? ' (the generated signing secret above is in use)' : ''}, but recording the connection failed: ${(e as Error).message}; run connect again to record it\n`);
        return 1;
      }
      emit(values.json, { connector: m.id, workspace: ws, connection: 'connected', secret_path: path, ...(generated ? { generated_signing_secret: generated } : {}) }, `connected ${m.id} for ${ws} (credentials in the ${s.store.kind} store at ${path})`);
      if (generated && !values.json) process.stdout.write(`signing_secret: ${generated}\n`);
      if (generated) process.stderr.write('The generated signing secret is shown only this once; give it to the receivers that verify the webhooks.\n');
      return 0;
    } finally {
      await s.close();
    }
  },
};

export const disconnectCommand: CliCommand = {
  summary: `${DISCONNECT.slice('ionflux '.length)}   delete a workspace's credentials (per the disconnect policy)`,
  async run(args) {
    const { values, positionals } = parse(args, { workspace: { type: 'string' }, json: { type: 'boolean' } }, DISCONNECT);
    const c = findConnector(await cliConnectors(), positionals[0], DISCONNECT);
    const ws = requireWorkspace(values.workspace, DISCONNECT);
    const policy = c.manifest.disconnectPolicy;
    const s = await open();
    try {
      // No connector has a vendor revoke hook yet, so revoke_and_delete can only delete here.
      if (policy !== 'keep_credentials_disabled') await s.store.delete(secretPaths.workspace(ws, c.manifest.id));
      await s.setState(ws, c.manifest.id, 'disconnect');
      const what = policy === 'keep_credentials_disabled' ? 'credentials kept, disabled' : policy === 'revoke_and_delete' ? 'credentials deleted (revoke them at the vendor too)' : 'credentials deleted';
      emit(values.json, { connector: c.manifest.id, workspace: ws, connection: 'disconnected', policy }, `disconnected ${c.manifest.id} for ${ws}: ${what}`);
      return 0;
    } finally {
      await s.close();
    }
  },
};

/** Registered URLs keep the rest of the entry (connection state, other settings) as it was. */
export const webhooksCommand: CliCommand = {
  summary: `${WEBHOOKS.slice('ionflux '.length)}   where the webhook connector may post; --preapprove skips approval (re-adding without it revokes that)`,
  async run(args) {
    const [sub, ...rest] = args;
    const { values, positionals } = parse(rest, { workspace: { type: 'string' }, preapprove: { type: 'boolean' }, json: { type: 'boolean' } }, WEBHOOKS);
    const url = positionals[0];
    if ((sub !== 'add-url' && sub !== 'remove-url') || !url || positionals.length !== 1) throw new UsageError(`usage: ${WEBHOOKS}`);
    if (sub === 'remove-url' && values.preapprove) throw new UsageError(`--preapprove only goes with add-url\nusage: ${WEBHOOKS}`);
    const ws = requireWorkspace(values.workspace, WEBHOOKS);
    // The same check the post action applies, so a URL that could never be used is refused now.
    if (sub === 'add-url' && !/^https?:$/.test(URL.canParse(url) ? new URL(url).protocol : '')) throw new UsageError(`${url} is not an http(s) URL`);
    const ctx = cliContext();
    const table = await openWorkspaceConnectors(ctx);
    try {
      const key = wsConnectorKey(ws, 'webhook');
      const prev = table.get(key) ?? { settings: {}, updated_at: '' };
      const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
      const urls = strings(prev.settings.urls).filter((u) => u !== url);
      const preapproved = strings(prev.settings.preapproved).filter((u) => u !== url);
      if (sub === 'add-url') urls.push(url);
      if (values.preapprove) preapproved.push(url);
      await table.set(key, { ...prev, settings: { ...prev.settings, urls, preapproved }, updated_at: new Date().toISOString() });
      emit(values.json, { workspace: ws, urls, preapproved }, `${sub === 'add-url' ? 'added' : 'removed'} ${url}${values.preapprove ? ' (pre-approved)' : ''}\nurls: ${urls.join(' ') || '(none)'}\npre-approved: ${preapproved.join(' ') || '(none)'}`);
      return 0;
    } finally {
      await table.close();
      await ctx.close();
    }
  },
};

export const workspaceCommand: CliCommand = {
  summary: `${WORKSPACE.slice('ionflux '.length)}   workspace-wide policy (financial actions are refused unless on)`,
  async run(args) {
    const [sub, ...rest] = args;
    const { values, positionals } = parse(rest, { workspace: { type: 'string' }, json: { type: 'boolean' } }, WORKSPACE);
    const [setting, value] = positionals;
    if (sub !== 'set' || setting !== 'financial-actions' || (value !== 'on' && value !== 'off') || positionals.length !== 2) throw new UsageError(`usage: ${WORKSPACE}`);
    const ws = requireWorkspace(values.workspace, WORKSPACE);
    const ctx = cliContext();
    const table = await openWorkspaceConnectors(ctx);
    try {
      const key = wsConnectorKey(ws, WORKSPACE_POLICY);
      await table.set(key, { ...(table.get(key) ?? { settings: {} }), financial_actions_enabled: value === 'on', updated_at: new Date().toISOString() });
      emit(values.json, { workspace: ws, financial_actions_enabled: value === 'on' }, `financial actions ${value === 'on' ? 'enabled' : 'disabled'} for ${ws}`);
      return 0;
    } finally {
      await table.close();
      await ctx.close();
    }
  },
};

import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { deadLetterRecord, DLQ_HEADERS } from '../shared/bus/dead-letter.ts';
import { createKafka } from '../shared/bus/kafka/client.ts';
import { topics } from '../shared/bus/topics.ts';
import { openApprovals, openWorkspaceConnectors, WORKSPACE_POLICY, wsConnectorKey, type Approval } from '../shared/commands/state.ts';
import { HubError } from '../shared/errors.ts';
import { secretPaths } from '../shared/secrets/store.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { REPLAY_LEDGER } from '../services/cli/dlq-guard.ts';
import { apiTokenPath } from '../services/email-dispatcher/api-auth.ts';
import { webhookDeadLetter } from '../services/webhook-ingester/dead-letter.ts';
import { vendors } from '../services/webhook-ingester/vendors/index.ts';
import { runCli } from './helpers/cli.ts';
import { infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';
import { startReceiver } from './helpers/receiver.ts';
import { startWorker, type RunningWorker } from './helpers/worker.ts';

const env = infraEnv();
const cliEnv = { VAULT_TOKEN: env.vaultToken, VAULT_ADDR: env.vaultAddr, USER: 'test-admin' };
// Under the tests' 60 s: a command that hangs fails its own assertion, naming itself, not the whole test by timeout.
const cli = (args: string[], input?: string) => runCli(args, { env: cliEnv, input, timeoutMs: 40_000 });
const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

describe('ionflux admin CLI against real Kafka, registry and OpenBao', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  beforeAll(async () => {
    infra = await realInfra('cli-admin-test');
  });
  afterAll(async () => {
    await infra?.close();
  });

  /** A fresh read of the workspace-connectors table, as another process would see it. */
  async function tableEntry(key: string) {
    const t = await openWorkspaceConnectors(infra);
    try {
      return t.get(key);
    } finally {
      await t.close();
    }
  }

  it('lists the webhook connector under "automation", not_connected, then connected after `connect webhook` with a piped empty secret', async () => {
    const ws = uid('ws');
    const all = await cli(['integrations', 'list']);
    expect(all.code).toBe(0);
    const lines = all.stdout.split('\n');
    const heading = lines.indexOf('automation');
    expect(heading).toBeGreaterThanOrEqual(0);
    expect(lines[heading + 1]).toMatch(/^\s+webhook\s+Outbound webhook\s+auth=webhook_secret\s+risk=high$/);
    expect((await cli(['integrations', 'list', '--category', 'commerce'])).stdout).not.toContain('webhook');

    const before = await cli(['integrations', 'list', '--workspace', ws]);
    expect(before.stdout).toMatch(/webhook .* not_connected/);
    expect((await cli(['integrations', 'list', '--workspace', ws, '--connected'])).stdout).not.toMatch(/^\s+webhook/m);
    expect((await cli(['integrations', 'test', 'webhook', '--workspace', ws])).code).toBe(1);

    const connect = await cli(['connect', 'webhook', '--workspace', ws], '\n');
    expect(connect.code, connect.stderr).toBe(0);
    const after = await cli(['integrations', 'list', '--workspace', ws, '--connected', '--json']);
    // Other connectors may be connected through platform credentials; only webhook is ours to check.
    const rows = after.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string });
    expect(rows.filter((r) => r.id === 'webhook')).toEqual([{ id: 'webhook', name: 'Outbound webhook', category: 'automation', authType: 'webhook_secret', riskLevel: 'high', workspace: ws, connection: 'connected' }]);
    const test = await cli(['integrations', 'test', 'webhook', '--workspace', ws]);
    expect(test).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ok: webhook/) });
  });

  it('connect stores the secret in Vault, prints a generated one exactly once and a given one never, writes an audit record; a bad one stores nothing', async () => {
    const ws = uid('ws');
    const gen = await cli(['connect', 'webhook', '--workspace', ws], '\n');
    expect(gen.code, gen.stderr).toBe(0);
    const stored = (await vault.get(secretPaths.workspace(ws, 'webhook')))!.value.signing_secret!;
    expect(stored).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(stored.slice(6), 'base64')).toHaveLength(32);
    expect(gen.stdout.split(stored)).toHaveLength(2);
    expect(gen.stdout).toContain(`signing_secret: ${stored}\n`);
    expect(gen.stderr).not.toContain(stored);
    expect((await tableEntry(wsConnectorKey(ws, 'webhook')))?.connection).toBe('connected');

    const ws2 = uid('ws');
    const given = newSecret();
    const piped = await cli(['connect', 'webhook', '--workspace', ws2], `${given}\n`);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout + piped.stderr).not.toContain(given);
    expect((await vault.get(secretPaths.workspace(ws2, 'webhook')))?.value).toEqual({ signing_secret: given });
    const viaField = newSecret();
    const field = await cli(['connect', 'webhook', '--workspace', ws2, '--field', `signing_secret=${viaField}`, '--json']);
    expect(JSON.parse(field.stdout)).toMatchObject({ connector: 'webhook', workspace: ws2, connection: 'connected' });
    expect(field.stdout + field.stderr).not.toContain(viaField);
    expect((await vault.get(secretPaths.workspace(ws2, 'webhook')))?.value).toEqual({ signing_secret: viaField });

    const audits = (await readAll(infra.bus, topics.audit)).filter((r) => r.key?.toString() === ws);
    const entries = await Promise.all(audits.map(async (r) => JSON.parse((await infra.codec.decode(r.value!)).payload_json) as Record<string, unknown>));
    expect(entries).toEqual([expect.objectContaining({ kind: 'connect', connector: 'webhook', actor: 'cli:test-admin', outcome: 'connected' })]);
    expect(JSON.stringify(entries)).not.toContain(stored);

    const ws3 = uid('ws');
    const bad = await cli(['connect', 'webhook', '--workspace', ws3], 'not-a-secret\n');
    expect(bad.code, bad.stderr).toBe(1);
    expect(bad.stdout + bad.stderr).not.toContain('not-a-secret');
    expect(await vault.get(secretPaths.workspace(ws3, 'webhook'))).toBeNull();
    const unknownField = await cli(['connect', 'webhook', '--workspace', ws3, '--field', 'api_key=x']);
    expect(unknownField.code, unknownField.stderr).toBe(2);
    // A credential typed where key=value was due is not echoed back in the usage error.
    const typed = newSecret();
    const noKey = await cli(['connect', 'webhook', '--workspace', ws3, '--field', typed]);
    expect(noKey.code, noKey.stderr).toBe(2);
    expect(noKey.stderr).toContain('--field: expected one of signing_secret as key=value');
    expect(noKey.stdout + noKey.stderr).not.toContain(typed.slice(6));
  });

  it('disconnect deletes the credentials and marks the connection disconnected', async () => {
    const ws = uid('ws');
    expect((await cli(['connect', 'webhook', '--workspace', ws, '--field', `signing_secret=${newSecret()}`])).code).toBe(0);
    const out = await cli(['disconnect', 'webhook', '--workspace', ws]);
    expect(out).toMatchObject({ code: 0, stdout: expect.stringContaining('credentials deleted') });
    expect(await vault.get(secretPaths.workspace(ws, 'webhook'))).toBeNull();
    expect((await tableEntry(wsConnectorKey(ws, 'webhook')))?.connection).toBe('disconnected');
    expect((await cli(['integrations', 'list', '--workspace', ws])).stdout).toMatch(/webhook .* disconnected/);
  });

  it('webhooks add-url / --preapprove / remove-url edit the settings and keep the rest of the entry; workspace set toggles financial actions', async () => {
    const ws = uid('ws');
    expect((await cli(['connect', 'webhook', '--workspace', ws, '--field', `signing_secret=${newSecret()}`])).code).toBe(0);
    expect((await cli(['webhooks', 'add-url', '--workspace', ws, 'https://a.example/hook', '--preapprove'])).code).toBe(0);
    expect((await cli(['webhooks', 'add-url', '--workspace', ws, 'https://b.example/hook'])).code).toBe(0);
    expect(await tableEntry(wsConnectorKey(ws, 'webhook'))).toMatchObject({ connection: 'connected', settings: { urls: ['https://a.example/hook', 'https://b.example/hook'], preapproved: ['https://a.example/hook'] } });
    const removed = await cli(['webhooks', 'remove-url', '--workspace', ws, 'https://a.example/hook', '--json']);
    expect(JSON.parse(removed.stdout)).toEqual({ workspace: ws, urls: ['https://b.example/hook'], preapproved: [] });
    expect(await tableEntry(wsConnectorKey(ws, 'webhook'))).toMatchObject({ connection: 'connected', settings: { urls: ['https://b.example/hook'], preapproved: [] } });
    expect((await cli(['webhooks', 'add-url', '--workspace', ws, 'ftp://c.example/x'])).code).toBe(2);

    expect((await cli(['workspace', 'set', '--workspace', ws, 'financial-actions', 'on'])).code).toBe(0);
    expect((await tableEntry(wsConnectorKey(ws, WORKSPACE_POLICY)))?.financial_actions_enabled).toBe(true);
    expect((await cli(['workspace', 'set', '--workspace', ws, 'financial-actions', 'off'])).code).toBe(0);
    expect((await tableEntry(wsConnectorKey(ws, WORKSPACE_POLICY)))?.financial_actions_enabled).toBe(false);
    expect((await cli(['workspace', 'set', '--workspace', ws, 'financial-actions', 'maybe'])).code).toBe(2);
  });

  it('approvals list / approve / deny: approving re-sends the command with its approval id, and deciding twice fails', async () => {
    const ws = uid('ws');
    const pending = (id: string): Approval => ({
      approval_id: id,
      status: 'pending',
      service: 'webhook',
      connector: 'webhook',
      action: 'post',
      command: { command_id: randomUUID(), workspace_id: ws, agent_id: 'agent-7', service: 'webhook', action: 'post', params: { url: 'https://a.example/hook', payload: { n: 1 } } },
      requested_at: new Date().toISOString(),
    });
    const [one, two] = [pending(`apr_${uid('')}`), pending(`apr_${uid('')}`)];
    const approvals = await openApprovals(infra);
    await approvals.set(one.approval_id, one);
    await approvals.set(two.approval_id, two);
    await approvals.close();

    const list = await cli(['approvals', 'list', '--workspace', ws]);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(one.approval_id);
    expect(list.stdout).toContain(two.approval_id);
    expect(list.stdout).toMatch(/webhook\.post\s+agent=agent-7/);

    const ok = await cli(['approvals', 'approve', one.approval_id, '--reason', 'looks fine']);
    expect(ok.code, ok.stderr).toBe(0);
    // Other tests put Avro and deliberately broken commands on this topic; ours are keyed by our workspace.
    const sent = (await readAll(infra.bus, topics.command('webhook'))).filter((r) => r.key?.toString() === ws).map((r) => JSON.parse(r.value!.toString()) as Record<string, unknown>);
    expect(sent.filter((c) => c.command_id === one.command.command_id)).toEqual([expect.objectContaining({ approval_id: one.approval_id, workspace_id: ws, params: one.command.params })]);
    const again = await cli(['approvals', 'approve', one.approval_id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already approved');

    expect((await cli(['approvals', 'deny', two.approval_id, '--reason', 'no'])).code).toBe(0);
    expect((await cli(['approvals', 'approve', two.approval_id])).code).toBe(1);
    expect((await cli(['approvals', 'list', '--workspace', ws])).stdout).toContain('no pending approvals');
    const all = (await cli(['approvals', 'list', '--workspace', ws, '--status', 'all', '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l) as Approval);
    expect(Object.fromEntries(all.map((a) => [a.approval_id, [a.status, a.decided_by, a.reason]]))).toEqual({
      [one.approval_id]: ['approved', 'cli:test-admin', 'looks fine'],
      [two.approval_id]: ['denied', 'cli:test-admin', 'no'],
    });
  });

  it('dlq list shows each dead letter; replay re-publishes it to its origin topic without dlq.* headers and skips HTTP origins', async () => {
    const service = uid('svc');
    const origin = `ionflux-test-origin-${uid('')}`;
    const dlq = topics.deadLetter(service);
    await infra.bus.ensureTopics([origin, dlq]);
    const value = Buffer.from(JSON.stringify({ command_id: 'c-1', hello: 'x'.repeat(300) }));
    await infra.bus.publish(deadLetterRecord({ dlqTopic: dlq, service, record: { topic: origin, partition: 2, offset: '41' }, message: { key: Buffer.from('ws-a'), value, headers: { trace: 'abc', binary: Buffer.from([0, 255, 1]) } }, error: new HubError('vendor_http_503', 'receiver answered 503'), attempts: 4 }));
    await infra.bus.publish({ topic: dlq, key: 'ws-b', value: '{"from":"http"}', headers: { [DLQ_HEADERS.topic]: 'http:webhooks/shopify', [DLQ_HEADERS.partition]: '-1', [DLQ_HEADERS.offset]: '-1', [DLQ_HEADERS.errorClass]: 'unlinked_account', [DLQ_HEADERS.errorMessage]: 'no workspace', [DLQ_HEADERS.failedAt]: new Date().toISOString() } });

    const list = await cli(['dlq', 'list', service]);
    expect(list.code, list.stderr).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    const line = lines.find((l) => l.includes(origin))!;
    expect(line).toMatch(new RegExp(`^\\d+:\\d+  \\d{4}-\\d\\d-\\d\\dT\\S+  from ${origin}\\[2\\]@41  vendor_http_503: receiver answered 503  \\{"command_id":"c-1","hello":"x+…$`));
    expect(line.split('  ').at(-1)).toHaveLength(121);
    const json = (await cli(['dlq', 'list', service, '--json', '--since', '1h'])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { dlq_offset: string; origin: { topic: string } });
    expect(json.map((d) => d.origin.topic).sort()).toEqual(['http:webhooks/shopify', origin].sort());
    expect((await cli(['dlq', 'list', service, '--since', new Date(Date.now() + 60_000).toISOString()])).stdout).toContain('no dead letters');

    const replay = await cli(['dlq', 'replay', service]);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toMatch(/skipped \d+:\d+: it came from an HTTP delivery \(http:webhooks\/shopify\)/);
    expect(replay.stdout).toContain('replayed 1 of 2 dead letters');
    const dead = json.find((d) => d.origin.topic === origin)!;
    const [back, ...more] = await readAll(infra.bus, origin, { atLeast: 1 });
    expect(more).toHaveLength(0);
    expect(back!.key?.toString()).toBe('ws-a');
    expect(back!.value).toEqual(value);
    expect(back!.headers).toEqual({ trace: 'abc', binary: Buffer.from([0, 255, 1]).toString('utf8'), 'ionflux.replayed_from': dead.dlq_offset });

    // Replayed once already: skipped, unless forced.
    const again = await cli(['dlq', 'replay', service, '--offset', dead.dlq_offset, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown).at(-1)).toEqual({ replayed: 0, skipped: 1, refused: 0 });
    const one = await cli(['dlq', 'replay', service, '--offset', dead.dlq_offset, '--force', '--json']);
    expect(one.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown).at(-1)).toEqual({ replayed: 1, skipped: 0, refused: 0 });
    expect(await readAll(infra.bus, origin, { atLeast: 2 })).toHaveLength(2);
    expect((await cli(['dlq', 'replay', service, '--offset', '9:999'])).code).toBe(1);
  });

  it('dlq replay of a command: a second replay skips it; one past the dedupe window is refused without --force, and so is a webhook delivery past WEBHOOK_DEDUPE_HOURS', async () => {
    const service = uid('svc');
    const commands = topics.command(service); // LogAppendTime, as the hub creates command topics
    const dlq = topics.deadLetter(service);
    await infra.bus.ensureTopics([commands, dlq]);
    // An approved external write that failed after its retries: dead-lettered with its signed release.
    const headers = { 'ionflux.approval': 'signed-release', trace: 'abc' };
    const sent = await infra.bus.publish({ topic: commands, key: 'ws-a', value: JSON.stringify({ command_id: 'c-1', action: 'post' }), headers });
    const deadLetter = (record: { partition: number; offset: string }, extra: Record<string, string> = {}) =>
      infra.bus.publish(deadLetterRecord({ dlqTopic: dlq, service, record: { topic: commands, ...record }, message: { key: Buffer.from('ws-a'), value: Buffer.from('{"command_id":"c-1"}'), headers: { ...headers, ...extra } }, error: new HubError('vendor_unavailable', 'receiver answered 503'), attempts: 5 }));
    const first = await deadLetter(sent);
    const at = `${first.partition}:${first.offset}`;
    const [original] = await readAll(infra.bus, commands, { atLeast: 1 });

    const replay = await cli(['dlq', 'replay', service]);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toContain(`replayed ${at} -> ${commands}`);
    const [, back] = await readAll(infra.bus, commands, { atLeast: 2 });
    expect(back!.headers).toMatchObject({ 'ionflux.approval': 'signed-release', 'ionflux.replayed_from': at, 'ionflux.replayed_original_at': original!.timestamp });

    // Replayed twice: the second run skips it (past the workers' window it would run again).
    const twice = await cli(['dlq', 'replay', service]);
    expect(twice.code, twice.stderr).toBe(0);
    expect(twice.stdout).toMatch(new RegExp(`skipped ${at}: already replayed at \\S+ by cli:test-admin`));
    expect(twice.stdout).toContain('replayed 0 of 1 dead letters');
    expect(await readAll(infra.bus, commands)).toHaveLength(2);
    expect((await cli(['dlq', 'list', service])).stdout).toMatch(/\(replayed \d{4}-/);

    // Past the dedupe window (1 ms here, as a worker configured so counts it): refused, exit 1.
    const second = await deadLetter(sent);
    const at2 = `${second.partition}:${second.offset}`;
    const short = (args: string[]) => runCli(args, { env: { ...cliEnv, COMMAND_DEDUPE_WINDOW_HOURS: String(1 / 3600_000) }, timeoutMs: 40_000 });
    const old = await short(['dlq', 'replay', service, '--offset', at2]);
    expect(old.code, old.stderr).toBe(1);
    expect(old.stdout).toMatch(new RegExp(`refused ${at2}: its command was written .* ago, beyond the 0 h dedupe window \\(COMMAND_DEDUPE_WINDOW_HOURS\\): the worker no longer remembers running it`));
    expect(await readAll(infra.bus, commands)).toHaveLength(2);
    // The dead letter of a replay counts from its first record (the header the replay carried), not from the replay.
    const chained = await deadLetter(back!, { 'ionflux.replayed_original_at': String(Date.now() - 8 * 24 * 3600_000) });
    const chainedOld = await cli(['dlq', 'replay', service, '--offset', `${chained.partition}:${chained.offset}`]);
    expect(chainedOld.code, chainedOld.stderr).toBe(1);
    expect(chainedOld.stdout).toMatch(/its command was written 19\d\.?\d? h ago, beyond the 168 h dedupe window/);
    const forced = await short(['dlq', 'replay', service, '--offset', at2, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(await readAll(infra.bus, commands, { atLeast: 3 })).toHaveLength(3);

    // A parked webhook delivery received longer ago than WEBHOOK_DEDUPE_HOURS (72 h).
    const inbox = `ionflux-test-inbox-${uid('')}`;
    await infra.bus.ensureTopics([inbox]);
    const receivedAt = new Date(Date.now() - 4 * 24 * 3600_000);
    const body = Buffer.from('{"id":1}');
    const delivery = { route: 'shopify', origin: 'webhook' as const, key: 'shop-1', body, headers: { 'x-shopify-topic': 'orders/create' }, receivedAt };
    const parked = await infra.bus.publish(webhookDeadLetter({ vendor: vendors.shopify!, d: { rawBody: body, headers: delivery.headers, receivedAt }, error: { code: 'unlinked', message: 'no workspace' }, value: body, inbox: { topic: inbox, delivery } }));
    const hook = await cli(['dlq', 'replay', 'webhook-ingester', '--offset', `${parked.partition}:${parked.offset}`]);
    expect(hook.code, hook.stderr).toBe(1);
    expect(hook.stdout).toMatch(/refused \d+:\d+: its delivery was received 96(\.\d)? h ago, beyond the 72 h dedupe window \(WEBHOOK_DEDUPE_HOURS\)/);
    expect(await readAll(infra.bus, inbox)).toHaveLength(0);
    expect((await cli(['dlq', 'replay', 'webhook-ingester', '--offset', `${parked.partition}:${parked.offset}`, '--force'])).code).toBe(0);
    expect(await readAll(infra.bus, inbox, { atLeast: 1 })).toHaveLength(1);
  });

  it('two dlq replays of the same dead letters at once (two admins) publish each one once; the one started first stops with exit 1, saying another replay took over', async () => {
    const service = uid('svc');
    const origin = `ionflux-test-origin-${uid('')}`;
    const dlq = topics.deadLetter(service);
    await infra.bus.ensureTopics([origin, dlq, REPLAY_LEDGER]);
    for (const n of [1, 2, 3]) {
      await infra.bus.publish(deadLetterRecord({ dlqTopic: dlq, service, record: { topic: origin, partition: 0, offset: String(n) }, message: { key: Buffer.from(`k-${n}`), value: Buffer.from(`v-${n}`), headers: {} }, error: new HubError('vendor_http_503', 'receiver answered 503'), attempts: 4 }));
    }

    // "At once": both runs are held where they read the ledger, then let go together. An open
    // transaction on the ledger holds them (they read committed records, up to its end), and
    // the broker says when both are reading it (a reader group of each assigned the ledger).
    const kafka = createKafka({ brokers: env.brokers, auth: env.auth, clientId: 'dlq-race-test', logger: infra.logger });
    const admin = kafka.admin();
    const gate = kafka.producer({ transactionalId: uid('dlq-race-gate-'), idempotent: true, maxInFlightRequests: 1 });
    await Promise.all([admin.connect(), gate.connect()]);
    const held = await gate.transaction();
    try {
      await held.send({ topic: REPLAY_LEDGER, messages: [{ key: `gate:${service}`, value: '{}' }] });
      const run = () => runCli(['dlq', 'replay', service], { env: cliEnv, timeoutMs: 90_000 });
      const runs = Promise.all([run(), run()]);
      const readers = `${env.auth.sasl!.username}.reader-`;
      const deadline = Date.now() + 75_000;
      for (let reading = 0; reading < 2; ) {
        if (Date.now() > deadline) throw new Error(`the two replays were not both reading ${REPLAY_LEDGER} within 75 s (${reading} was)`);
        await new Promise((r) => setTimeout(r, 200));
        const ids = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(readers));
        const { groups } = await admin.describeGroups(ids);
        reading = groups.filter((g) => g.members.some((m) => Buffer.from(m.memberAssignment).includes(REPLAY_LEDGER))).length;
      }
      await held.abort();
      const outcomes = await runs;

      const replayed = await readAll(infra.bus, origin, { atLeast: 3 });
      expect(replayed.map((r) => r.key?.toString()).sort(), outcomes.map((o) => o.stdout + o.stderr).join('\n---\n')).toEqual(['k-1', 'k-2', 'k-3']);
      const [winner, loser] = [...outcomes].sort((a, b) => (a.code ?? 9) - (b.code ?? 9));
      expect(winner!.code, winner!.stderr).toBe(0);
      expect(winner!.stdout).toContain('replayed 3 of 3 dead letters');
      expect(loser!.code, loser!.stdout + loser!.stderr).toBe(1);
      expect(loser!.stdout).toMatch(new RegExp(`stopped at \\d+:\\d+: another \`ionflux dlq replay\` of ${dlq} started while this one ran and took over`));
      expect(loser!.stdout).toContain(`replayed 0 of 3 dead letters; stopped by another replay of ${dlq}`);
    } finally {
      await held.abort().catch(() => undefined);
      await Promise.all([admin.disconnect(), gate.disconnect()]);
    }
    // The ledger has every replay, whoever made it: a third run replays nothing.
    const third = await cli(['dlq', 'replay', service]);
    expect(third.code, third.stderr).toBe(0);
    expect(third.stdout).toContain('replayed 0 of 3 dead letters');
  }, 180_000);
});

/** A second terminal with nothing exported: the CLI reads what `make up` left in .ionflux/ (kafka.env, hub.env). */
function secondTerminal() {
  const dir = mkdtempSync(join(tmpdir(), 'ionflux-env-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true })); // it holds the admin's credentials
  const sasl = env.auth.sasl!;
  writeFileSync(join(dir, 'kafka.env'), `KAFKA_BROKERS=${env.brokers.join(',')}\nKAFKA_SASL_MECHANISM=${sasl.mechanism}\nKAFKA_SASL_USERNAME=${sasl.username}\nKAFKA_SASL_PASSWORD=${sasl.password}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'hub.env'), `VAULT_ADDR=${env.vaultAddr}\nVAULT_TOKEN=${env.vaultToken}\nSCHEMA_REGISTRY_URL=${env.registryUrl}\n`, { mode: 0o600 });
  // A local secrets file, if anything wrongly used one, stays in the test's folder.
  const local = { SECRETS_FILE: join(dir, 'secrets.enc'), SECRETS_KEY_FILE: join(dir, 'secrets.key') };
  return (args: string[], input?: string) =>
    runCli(args, { env: { IONFLUX_ENV_DIR: dir, USER: 'test-admin', ...local }, unset: ['KAFKA_BROKERS', 'KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD', 'KAFKA_SASL_PASSWORD_FILE', 'VAULT_ADDR', 'VAULT_TOKEN', 'VAULT_TOKEN_FILE', 'SCHEMA_REGISTRY_URL'], input, timeoutMs: 40_000 });
}

describe('ionflux in a second terminal with nothing exported', () => {
  it('email tokens create|revoke store the token where the dispatcher reads it (OpenBao, from hub.env)', async () => {
    const bare = secondTerminal();
    const ws = uid('ws');
    const created = await bare(['email', 'tokens', 'create', '--workspace', ws, '--json']);
    expect(created.code, created.stderr).toBe(0);
    const { token } = JSON.parse(created.stdout) as { token: string };
    expect((await vault.get(apiTokenPath(ws)))?.value.token_sha256).toBe(createHash('sha256').update(token).digest('hex'));
    const revoked = await bare(['email', 'tokens', 'revoke', '--workspace', ws]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(await vault.get(apiTokenPath(ws))).toBeNull();
  });

  it('connect shopify|tiktok reach the broker with the admin\'s credentials from kafka.env and print the link', async () => {
    const bare = secondTerminal();
    const ws = uid('ws');
    for (const args of [['connect', 'tiktok', '--workspace', ws], ['connect', 'shopify', '--workspace', ws, '--shop', 'cli-test.myshopify.com']]) {
      // No sync service runs here: nobody answers, so the wait ends after its second with exit 1.
      const r = await bare([...args, '--timeout', '1', '--json']);
      expect(r.code, r.stderr).toBe(1);
      expect((JSON.parse(r.stdout.trim().split('\n')[0]!) as { authorization_url: string }).authorization_url).toMatch(/grant=/);
      expect(r.stderr).toMatch(/no (authorization|installation) within 1 s/);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  });
});

describe('ionflux integrations run through a connector worker process', () => {
  let worker: RunningWorker;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const ws = uid('ws');
  beforeAll(async () => {
    receiver = await startReceiver();
    worker = await startWorker({ RETRY_MAX_WAIT_MS: '2000' });
  }, 180_000);
  afterAll(async () => {
    await worker?.stop();
    await receiver?.close();
  });

  it('exits 0 with the succeeded outcome for a pre-approved URL, 3 with an approval id otherwise, and 1 on failure', async () => {
    expect((await cli(['connect', 'webhook', '--workspace', ws, '--field', `signing_secret=${newSecret()}`])).code).toBe(0);
    expect((await cli(['webhooks', 'add-url', '--workspace', ws, receiver.url('/pre'), '--preapprove'])).code).toBe(0);
    expect((await cli(['webhooks', 'add-url', '--workspace', ws, receiver.url('/ask')])).code).toBe(0);

    const ok = await cli(['integrations', 'run', 'webhook', 'post', '--workspace', ws, '--param', `url=${receiver.url('/pre')}`, '--params-json', '{"payload":{"n":1}}', '--json', '--timeout', '60']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ status: 'succeeded', agent_id: 'cli', service: 'webhook', action: 'post', result: { status: 200 } });
    expect(JSON.parse(receiver.deliveries.find((d) => d.path === '/pre')!.body)).toMatchObject({ workspace_id: ws, data: { n: 1 } });

    const wait = await cli(['integrations', 'run', 'webhook', 'post', '--workspace', ws, '--param', `url=${receiver.url('/ask')}`, '--param', 'payload={"n":2}', '--agent', 'ops-bot']);
    expect(wait.code, wait.stderr).toBe(3);
    const approvalId = /approval (apr_\w+) is pending: ionflux approvals approve/.exec(wait.stdout)?.[1];
    expect(approvalId).toBeDefined();
    expect(receiver.count('/ask')).toBe(0);
    expect((await cli(['approvals', 'approve', approvalId!])).code).toBe(0);
    await expect.poll(() => receiver.count('/ask'), { timeout: 30_000 }).toBe(1);

    const failed = await cli(['integrations', 'run', 'webhook', 'post', '--workspace', ws, '--param', 'url=not-a-url', '--param', 'payload={}', '--json']);
    expect(failed.code).toBe(1);
    expect(JSON.parse(failed.stdout)).toMatchObject({ status: 'failed', error: { code: 'invalid_params' } });
    expect((await cli(['integrations', 'run', 'webhook', 'nope', '--workspace', ws])).code).toBe(2);
  }, 180_000);

  it('in a second terminal with nothing exported, stores and reads where the running hub does (the files make up writes)', async () => {
    // What `make up` leaves in .ionflux/: the admin's Kafka settings and the hub's OpenBao address and admin token.
    const dir = mkdtempSync(join(tmpdir(), 'ionflux-env-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true })); // it holds the admin's credentials
    const sasl = env.auth.sasl!;
    writeFileSync(join(dir, 'kafka.env'), `KAFKA_BROKERS=${env.brokers.join(',')}\nKAFKA_SASL_MECHANISM=${sasl.mechanism}\nKAFKA_SASL_USERNAME=${sasl.username}\nKAFKA_SASL_PASSWORD=${sasl.password}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'hub.env'), `VAULT_ADDR=${env.vaultAddr}\nVAULT_TOKEN=${env.vaultToken}\nSCHEMA_REGISTRY_URL=${env.registryUrl}\n`, { mode: 0o600 });
    const bare = (args: string[], input?: string) =>
      runCli(args, { env: { IONFLUX_ENV_DIR: dir, USER: 'test-admin' }, unset: ['KAFKA_BROKERS', 'KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD', 'KAFKA_SASL_PASSWORD_FILE', 'VAULT_ADDR', 'VAULT_TOKEN', 'SCHEMA_REGISTRY_URL'], input, timeoutMs: 40_000 });
    const ws = uid('ws');
    const connected = await bare(['connect', 'webhook', '--workspace', ws], '\n');
    expect(connected.code, connected.stderr).toBe(0);
    // In OpenBao, where the services read it, not in a local file.
    expect((await vault.get(secretPaths.workspace(ws, 'webhook')))?.value.signing_secret).toMatch(/^whsec_/);
    expect((await bare(['integrations', 'list', '--workspace', ws, '--connected'])).stdout).toMatch(/webhook .* connected/);

  });
});

import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaTable } from '../shared/bus/table/table.ts';
import { topics } from '../shared/bus/topics.ts';
import { createHubClient, type HubClient, type Outcome } from '../shared/commands/client.ts';
import { defaultOutcomeTopic } from '../shared/commands/outcome.ts';
import { openApprovals, openWorkspaceConnectors, wsConnectorKey, type Approval, type WorkspaceConnector } from '../shared/commands/state.ts';
import { secretPaths } from '../shared/secrets/store.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import { runCli } from './helpers/cli.ts';
import { startDispatcher, type RunningDispatcher } from './helpers/email.ts';
import { infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';
import { startIngester, type RunningIngester } from './helpers/ingester.ts';
import { startMediaServer } from './helpers/llm.ts';
import { loadFixture, sendgridHeaders, sendgridKeyPair } from './helpers/sign.ts';
import { startSmtpCapture, type SmtpCapture } from './helpers/smtp.ts';
import { startSendgridSimulator, type SendgridSimulator } from './simulators/sendgrid.ts';
import { SUPPRESSIONS_TOPIC } from '../services/email-dispatcher/suppressions.ts';

const env = infraEnv();
const secret = (p: string) => `${p}${randomBytes(18).toString('hex')}`;
const SMTP_PASS = secret('smtp-pass-');
const PLATFORM_TOKEN = secret('platform-token-');
const SG_KEY = secret('SG.');
const SG_BAD_KEY = secret('SG.bad');
const sendgridWebhook = sendgridKeyPair();

describe('email dispatcher: SMTP to a real capturing server, SendGrid to its simulator, through Kafka', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let smtp: SmtpCapture;
  let sendgrid: SendgridSimulator;
  let dispatcher: RunningDispatcher;
  let ingester: RunningIngester;
  let client: HubClient;
  let approvals: KafkaTable<Approval>;
  let settings: KafkaTable<WorkspaceConnector>;
  let dir: string;
  let media: Awaited<ReturnType<typeof startMediaServer>>;
  const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });
  const ws = uid('ws');
  const sgWs = uid('ws');
  const cleanup: string[] = [];

  const agentSend = (workspace: string, action: 'send' | 'send_bulk', params: Record<string, unknown>, command_id?: string) =>
    client.send({ workspace_id: workspace, agent_id: 'agent-mail', service: 'email', action, params, ...(command_id ? { command_id } : {}) }, { timeoutMs: 60_000 });
  const api = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${dispatcher.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
  const platform = { authorization: `Bearer ${PLATFORM_TOKEN}` };

  /** The outcome of `commandId` with `status`, read from the workspace's outcome topic once it is there. */
  async function outcomeOf(workspace: string, commandId: string, status: string): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await expect
      .poll(async () => {
        const events = await Promise.all((await readAll(infra.bus, defaultOutcomeTopic('email', workspace))).map((r) => infra.codec.decode(r.value!)));
        const e = events.find((x) => x.correlation_id === commandId && x.event_type === `email.command.${status}`);
        found = e ? (JSON.parse(e.payload_json) as Record<string, unknown>) : undefined;
        return Boolean(found);
      }, { timeout: 30_000, interval: 500 })
      .toBe(true);
    return found!;
  }

  async function approveTemplate(workspace: string, template: Record<string, unknown>): Promise<void> {
    const file = join(dir, `${uid('tpl')}.json`);
    await writeFile(file, JSON.stringify(template));
    const r = await runCli(['email', 'templates', 'approve', '--workspace', workspace, '--file', file]);
    expect(r.code, r.stderr).toBe(0);
    await expect.poll(() => Boolean((settings.get(wsConnectorKey(workspace, 'email'))?.settings.approved_templates as Record<string, unknown> | undefined)?.[String(template.id)]), { timeout: 10_000 }).toBe(true);
  }

  beforeAll(async () => {
    infra = await realInfra('email-test');
    dir = await mkdtemp(join(tmpdir(), 'email-test-'));
    media = await startMediaServer();
    smtp = await startSmtpCapture({ auth: { user: 'hub', pass: SMTP_PASS } });
    sendgrid = await startSendgridSimulator({ keys: [SG_KEY] });
    [approvals, settings] = await Promise.all([openApprovals(infra), openWorkspaceConnectors(infra)]);
    dispatcher = await startDispatcher({
      EMAIL_PROVIDER: 'smtp',
      EMAIL_SMTP_URL: smtp.url,
      EMAIL_FROM: 'IONFLUX <noreply@ionflux.test>',
      EMAIL_API_TOKEN: PLATFORM_TOKEN,
      SENDGRID_BASE_URL: sendgrid.url,
      EMAIL_ALLOW_PRIVATE_HOSTS: 'true',
      EMAIL_PROVIDER_WAIT_MAX_MS: '20000',
      EMAIL_SENDGRID_BATCH_SIZE: '10',
    });
    ingester = await startIngester({ SENDGRID_WEBHOOK_PUBLIC_KEY: sendgridWebhook.publicKey });
    client = await createHubClient({ brokers: env.brokers, registryUrl: env.registryUrl });
  }, 180_000);

  afterAll(async () => {
    await client?.close();
    await Promise.all([dispatcher?.stop(), ingester?.stop()]);
    await Promise.all([smtp?.close(), sendgrid?.close(), media?.close(), approvals?.close(), settings?.close(), infra?.close()]);
    for (const p of cleanup) await vault.delete(p).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('sends a platform notification over SMTP from POST /v1/emails/send?wait: recipients, text and html parts, headers and attachment as the server received them', async () => {
    const key = uid('idem');
    const body = {
      workspace_id: ws,
      to: [{ email: 'Ada@Example.com', name: 'Ada Lovelace' }],
      cc: ['cc@example.com'],
      bcc: ['hidden@example.com'],
      reply_to: 'support@ionflux.test',
      subject: 'Your export is ready',
      text: 'Plain body',
      html: '<p>HTML <b>body</b></p>',
      headers: { 'X-Campaign': 'exports' },
      attachments: [
        { filename: 'report.csv', content_base64: Buffer.from('a,b\n1,2\n').toString('base64'), content_type: 'text/csv' },
        // By reference, as a stored artifact is: fetched by the dispatcher at send time.
        { filename: 'chart.png', url: media.serve('/artifacts/chart.png', Buffer.alloc(3000, 7), 'image/png') },
      ],
    };
    const res = await api('/v1/emails/send?wait=20s', body, { ...platform, 'Idempotency-Key': key });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ command_id: key, status: 'succeeded', result: { status: 'sent', provider: 'smtp', accepted: expect.arrayContaining(['ada@example.com', 'cc@example.com', 'hidden@example.com']) } });
    const [m] = await smtp.to('ada@example.com');
    expect(m).toBeDefined();
    expect(m!.rcpt_tos.map((r) => r.toLowerCase()).sort()).toEqual(['ada@example.com', 'cc@example.com', 'hidden@example.com']);
    expect(m!.auth).toBe(true);
    expect(m!.subject).toBe('Your export is ready');
    expect(m!.text?.trim()).toBe('Plain body');
    expect(m!.html?.trim()).toBe('<p>HTML <b>body</b></p>');
    expect(smtp.header(m!, 'To')).toContain('Ada Lovelace');
    expect(smtp.header(m!, 'Cc')).toContain('cc@example.com');
    expect(smtp.header(m!, 'Bcc')).toBeUndefined();
    expect(smtp.header(m!, 'Reply-To')).toContain('support@ionflux.test');
    expect(smtp.header(m!, 'X-Campaign')).toBe('exports');
    expect(smtp.header(m!, 'From')).toContain('noreply@ionflux.test');
    expect(smtp.header(m!, 'List-Unsubscribe')).toBeUndefined();
    expect(m!.message_id).toBe((res.body.result as { message_id: string }).message_id);
    expect(m!.attachments).toEqual([{ filename: 'report.csv', content_type: 'text/csv', size: 8 }, { filename: 'chart.png', content_type: 'image/png', size: 3000 }]);
    expect(media.hits('/artifacts/chart.png')).toBe(1);

    // The same Idempotency-Key again: the first outcome, no second message.
    const again = await api('/v1/emails/send?wait=20s', body, { ...platform, 'Idempotency-Key': key });
    expect(again.body).toMatchObject({ command_id: key, status: 'succeeded' });
    expect(await smtp.to('ada@example.com')).toHaveLength(1);
  });

  it('refuses an Idempotency-Key reused with another body (422, nothing sent for it) and answers the same body with the first result', async () => {
    const key = uid('idem');
    const first = { workspace_id: ws, to: [`reused-a-${ws}@example.com`], subject: 'First request', text: 'the first body' };
    const other = { workspace_id: ws, to: [`reused-b-${ws}@example.com`], subject: 'Another request', text: 'another body' };
    const sent = await api('/v1/emails/send?wait=20s', first, { ...platform, 'Idempotency-Key': key });
    expect(sent.status, JSON.stringify(sent.body)).toBe(200);
    expect(sent.body).toMatchObject({ command_id: key, status: 'succeeded', result: { status: 'sent' } });

    const reused = await api('/v1/emails/send?wait=20s', other, { ...platform, 'Idempotency-Key': key });
    expect(reused).toEqual({ status: 422, body: { error: 'idempotency_key_reused', message: expect.any(String) } });
    expect((await api('/v1/emails/send', other, { ...platform, 'Idempotency-Key': key })).status).toBe(422);
    // The same body again (sealed anew, with a later expiry): the first result, nothing sent again.
    const again = await api('/v1/emails/send?wait=20s', first, { ...platform, 'Idempotency-Key': key });
    expect(again).toEqual({ status: 200, body: sent.body });

    // Two requests racing for a fresh key: whichever the worker takes first is sent, the other refused.
    const raced = uid('idem');
    const racers = ['a', 'b'].map((n) => ({ workspace_id: ws, to: [`raced-${n}-${ws}@example.com`], subject: `Racer ${n}`, text: n }));
    const answers = await Promise.all(racers.map((body) => api('/v1/emails/send?wait=20s', body, { ...platform, 'Idempotency-Key': raced })));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 422]);

    const to = async (...addresses: string[]) => (await Promise.all(addresses.map((a) => smtp.to(a)))).flat();
    expect(await to(`reused-a-${ws}@example.com`, `reused-b-${ws}@example.com`)).toHaveLength(1);
    expect(await to(`reused-b-${ws}@example.com`)).toHaveLength(0);
    expect(await to(`raced-a-${ws}@example.com`, `raced-b-${ws}@example.com`)).toHaveLength(1);
  });

  it('fails a send the server refuses for good at once (550), and one it defers (451) after the worker\'s retries, dead-lettered', async () => {
    const refused = await api('/v1/emails/send?wait=20s', { workspace_id: ws, to: [`reject-${ws}@example.com`], subject: 'x', text: 'x' }, platform);
    expect(refused.body).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'smtp_550' } });
    const deferred = await api('/v1/emails/send?wait=30s', { workspace_id: ws, to: [`tempfail-${ws}@example.com`], subject: 'x', text: 'x' }, platform);
    expect(deferred.body).toMatchObject({ status: 'failed', attempts: 3, error: { code: 'vendor_unavailable', retryable: true } });
    // The dead letter is written in the outcome's transaction; ?wait answers as soon as the dispatcher has the outcome.
    await expect.poll(async () => (await readAll(infra.bus, topics.deadLetter('email'))).some((r) => r.value?.toString().includes(String(deferred.body.command_id))), { timeout: 15_000, interval: 500 }).toBe(true);
  });

  it('answers 401 without a valid token and 400 naming every problem; a workspace token queues (202) a send that waits for approval', async () => {
    expect((await api('/v1/emails/send', { to: ['a@example.com'], subject: 's', text: 't' })).status).toBe(401);
    expect((await api('/v1/emails/send', { to: ['a@example.com'], subject: 's', text: 't' }, { authorization: 'Bearer not-a-token-at-all-here' })).status).toBe(401);
    const bad = await api('/v1/emails/send?wait=forever', { workspace_id: ws, to: ['not-an-address'], subject: 'two\nlines' }, platform);
    expect(bad.status).toBe(400);
    const paths = (bad.body.problems as { path: string }[]).map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['wait', 'to.0', 'subject', 'text']));
    expect((await api('/v1/emails/send', '{not json', platform)).status).toBe(400);
    expect((await api('/v1/emails/send', { to: ['a@example.com'], subject: 's', text: 't' }, platform)).body.problems).toEqual([expect.objectContaining({ path: 'workspace_id' })]);

    const created = await runCli(['email', 'tokens', 'create', '--workspace', ws, '--json']);
    expect(created.code, created.stderr).toBe(0);
    cleanup.push(secretPaths.workspace(ws, 'email-api'));
    const token = (JSON.parse(created.stdout) as { token: string }).token;
    const queued = await api('/v1/emails/send', { to: ['queued@example.com'], subject: 'Hi', text: 'from the workspace' }, { authorization: `Bearer ${token}` });
    expect(queued.status).toBe(202);
    expect(queued.body).toMatchObject({ command_id: expect.any(String), status: 'queued' });
    await expect.poll(() => [...approvals.entries()].some(([, a]) => a.command.command_id === queued.body.command_id && a.status === 'pending'), { timeout: 20_000 }).toBe(true);
    expect(await smtp.to('queued@example.com')).toHaveLength(0);
    // Another workspace's id with this token is refused.
    expect((await api('/v1/emails/send', { workspace_id: sgWs, to: ['x@example.com'], subject: 's', text: 't' }, { authorization: `Bearer ${token}` })).status).toBe(400);
  });

  it("keeps an agent's send for approval and sends it once approved; a platform seal copied onto another command, or made up, releases nothing", async () => {
    const waiting = await agentSend(ws, 'send', { to: ['approve-me@example.com'], subject: 'Gated', text: 'needs an admin' });
    expect(waiting).toMatchObject({ status: 'awaiting_approval', approval_id: expect.stringMatching(/^apr_/) });
    await expect.poll(() => approvals.get(waiting.approval_id!)?.status, { timeout: 10_000 }).toBe('pending');
    expect(await smtp.to('approve-me@example.com')).toHaveLength(0);
    const approved = await runCli(['approvals', 'approve', waiting.approval_id!]);
    expect(approved.code, approved.stderr).toBe(0);
    expect(await outcomeOf(ws, waiting.command_id, 'succeeded')).toMatchObject({ result: { status: 'sent' } });
    expect(await smtp.to('approve-me@example.com')).toHaveLength(1);

    // A genuine platform command's params, as an agent reading the command topic would see them.
    const key = uid('idem');
    await api('/v1/emails/send?wait=20s', { workspace_id: ws, to: ['victim@example.com'], subject: 'Notice', text: 'real' }, { ...platform, 'Idempotency-Key': key });
    const records = await readAll(infra.bus, topics.command('email'), { atLeast: 1 });
    const sealed = records.map((r) => JSON.parse(r.value!.toString()) as { command_id: string; params: Record<string, unknown> }).find((c) => c.command_id === key)!;
    expect(sealed.params.platform_seal).toBeDefined();
    const replay = await agentSend(ws, 'send', sealed.params);
    expect(replay).toMatchObject({ status: 'failed', error: { code: 'invalid_platform_seal' } });
    const madeUp = await agentSend(ws, 'send', { to: ['victim@example.com'], subject: 'Notice', text: 'forged', platform_seal: { command_id: 'x', workspace_id: ws, expires_at: Date.now() + 60_000, mac: 'a'.repeat(64) } });
    expect(madeUp).toMatchObject({ status: 'awaiting_approval' });
    expect(await smtp.to('victim@example.com')).toHaveLength(1);
  });

  it('sends a pre-approved template to every recipient once with merged fields and RFC 8058 List-Unsubscribe; an edited template waits; the unsubscribe link suppresses', async () => {
    const bulkWs = uid('ws');
    const template = { id: 'welcome', subject: 'Welcome, {{name}}!', text: 'Hi {{name}}, code {{code}}. Leave: {{unsubscribe_url}}', html: '<p>Hi {{name}}, code <b>{{code}}</b></p>' };
    await approveTemplate(bulkWs, template);
    const people = ['ann', 'bob', 'cy', 'dee', 'eve'].map((n) => ({ email: `${n}-${bulkWs}@example.com`, name: n === 'eve' ? '<Eve & Co>' : n, merge: { code: `${n.toUpperCase()}-1` } }));
    const rejected = { email: `reject-${bulkWs}@example.com`, name: 'nobody', merge: { code: 'X' } };
    const out = await agentSend(bulkWs, 'send_bulk', { template, recipients: [...people, rejected] });
    expect(out.status, JSON.stringify(out.error)).toBe('succeeded');
    const r = out.result as { sent: { email: string; message_id: string }[]; failed: { email: string; code: string }[]; suppressed: unknown[]; unknown: unknown[]; total: number };
    expect(r.total).toBe(6);
    expect(r.sent.map((s) => s.email).sort()).toEqual(people.map((p) => p.email).sort());
    // Refused for good: a re-send would be refused the same, so not retry_safe.
    expect(r.failed).toEqual([expect.objectContaining({ email: rejected.email, code: 'smtp_550', retry_safe: false })]);
    expect(r.unknown).toEqual([]);
    for (const p of people) {
      const got = await smtp.to(p.email);
      expect(got).toHaveLength(1);
      const m = got[0]!;
      expect(m.rcpt_tos).toEqual([p.email]);
      expect(m.subject).toBe(`Welcome, ${p.name}!`);
      expect(m.text).toContain(`code ${p.merge.code}`);
      expect(m.html).toContain(`<b>${p.merge.code}</b>`);
      expect(m.message_id).toBe(r.sent.find((s) => s.email === p.email)!.message_id);
      expect(smtp.header(m, 'List-Unsubscribe')?.trim()).toMatch(/^<http:\/\/127\.0\.0\.1:\d+\/v1\/emails\/unsubscribe\?t=[\w-]+\.[\w-]+>$/);
      expect(smtp.header(m, 'List-Unsubscribe-Post')).toBe('List-Unsubscribe=One-Click');
    }
    // Merge values are escaped in html, not in text.
    const eve = (await smtp.to(people[4]!.email))[0]!;
    expect(eve.html).toContain('Hi &lt;Eve &amp; Co&gt;');
    expect(eve.text).toContain('Hi <Eve & Co>');

    // One-click unsubscribe (RFC 8058) from the link in Ann's message; her next bulk mail is suppressed.
    const link = smtp.header((await smtp.to(people[0]!.email))[0]!, 'List-Unsubscribe')!.trim().slice(1, -1);
    expect((await fetch(link)).status).toBe(200); // the confirmation page; a GET changes nothing
    const post = await fetch(link, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
    expect(post.status).toBe(200);
    expect((await fetch(link.replace(/\.[\w-]+$/, '.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'), { method: 'POST' })).status).toBe(400);
    const second = await agentSend(bulkWs, 'send_bulk', { template, recipients: people.slice(0, 2) });
    expect(second.result).toMatchObject({ sent: [{ email: people[1]!.email }], suppressed: [{ email: people[0]!.email, reason: 'unsubscribed' }] });
    expect(await smtp.to(people[0]!.email)).toHaveLength(1);

    // Editing the content needs a new approval.
    const edited = await agentSend(bulkWs, 'send_bulk', { template: { ...template, subject: 'Welcome, {{name}}!!' }, recipients: people.slice(1, 2) });
    expect(edited).toMatchObject({ status: 'awaiting_approval' });
  });

  it('suppresses an address after a signed SendGrid bounce POSTed to the ingester (through ionflux.internal.email)', async () => {
    const account = uid('esp');
    expect((await runCli(['link', 'email', account, ws, '--verification-key', sendgridWebhook.publicKey])).code).toBe(0);
    const address = `bounced-${ws}@example.com`;
    const [item] = JSON.parse(loadFixture('sendgrid', 'bounce').toString()) as Record<string, unknown>[];
    // Each try is a new delivery: the link reaches the running ingester through Kafka.
    await expect
      .poll(async () => {
        const body = JSON.stringify([{ ...item, email: address, sg_event_id: randomUUID() }]);
        return (await ingester.post(`/webhooks/email/sendgrid/${account}`, body, sendgridHeaders({ body, privateKey: sendgridWebhook.privateKey }))).body.status;
      }, { timeout: 15_000, interval: 1000 })
      .toBe('accepted');
    // The copy is the ingester's inbox processor's, shortly after the 2xx.
    await expect.poll(async () => (await readAll(infra.bus, topics.internal('email'))).some((c) => c.key?.toString() === ws), { timeout: 15_000, interval: 250 }).toBe(true);
    // The dispatcher writes what it learned to its suppression table; once there, a send skips the address.
    await expect.poll(async () => (await readAll(infra.bus, SUPPRESSIONS_TOPIC)).some((r) => r.key?.toString() === `${ws}:${address}`), { timeout: 20_000, interval: 500 }).toBe(true);
    const res = await api('/v1/emails/send?wait=20s', { workspace_id: ws, to: [address], subject: 'After the bounce', text: 'x' }, platform);
    expect(res.body).toMatchObject({ status: 'succeeded', result: { status: 'suppressed', suppressed: [{ email: address, reason: 'bounced' }] } });
    expect(await smtp.to(address)).toHaveLength(0);
  });

  it("sends through a workspace's own SendGrid account (connected after its healthcheck): one request of personalizations with custom_args, throttled by a 429 honouring Retry-After", async () => {
    const connectEnv = { SENDGRID_BASE_URL: sendgrid.url };
    const bad = await runCli(['connect', 'email', '--workspace', sgWs, '--field', 'provider=sendgrid', '--field', 'from=news@shop.test'], { env: connectEnv, input: `${SG_BAD_KEY}\n` });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('401');
    const ok = await runCli(['connect', 'email', '--workspace', sgWs, '--field', 'provider=sendgrid', '--field', 'from=news@shop.test'], { env: connectEnv, input: `${SG_KEY}\n` });
    expect(ok.code, ok.stderr).toBe(0);
    for (const out of [bad.stdout, bad.stderr, ok.stdout, ok.stderr]) for (const k of [SG_KEY, SG_BAD_KEY]) expect(out).not.toContain(k);
    cleanup.push(secretPaths.workspace(sgWs, 'email'));
    const template = { id: 'promo', subject: 'Hello {{name}}', text: 'Deal {{deal}}', html: '<i>{{deal}}</i>' };
    await approveTemplate(sgWs, template);
    const recipients = Array.from({ length: 5 }, (_, i) => ({ email: `sg${i}-${sgWs}@example.com`, name: `P${i}`, merge: { deal: `${i}0%` } }));
    sendgrid.script([{ status: 429, headers: { 'retry-after': '2' } }]);
    const before = sendgrid.requests.length;
    const started = Date.now();
    const out: Outcome = await agentSend(sgWs, 'send_bulk', { template, recipients });
    expect(out.status, JSON.stringify(out.error)).toBe('succeeded');
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(sendgrid.requests.slice(before).map((r) => r.status)).toEqual([429, 202]);
    const mail = sendgrid.sent.at(-1)!;
    expect(mail.key).toBe(SG_KEY);
    const ps = mail.body.personalizations as { to: { email: string }[]; substitutions: Record<string, string>; custom_args: Record<string, string>; headers: Record<string, string> }[];
    expect(ps.map((p) => p.to[0]!.email)).toEqual(recipients.map((r) => r.email));
    expect(ps[2]).toMatchObject({ substitutions: { '{{name}}': 'P2', '{{deal}}': '20%', '{{deal|html}}': '20%' }, custom_args: { ionflux_workspace: sgWs, ionflux_command: out.command_id, ionflux_recipient: recipients[2]!.email }, headers: { 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' } });
    expect(mail.body).toMatchObject({ from: { email: 'news@shop.test' }, subject: 'Hello {{name}}', content: [{ type: 'text/plain', value: 'Deal {{deal}}' }, { type: 'text/html', value: '<i>{{deal|html}}</i>' }] });
    expect(out.result).toMatchObject({ provider: 'sendgrid', sent: recipients.map((r) => ({ email: r.email, message_id: mail.messageId })) });

    // A 400 with SendGrid's error body: that batch's recipients are listed failed with its message, not retried.
    sendgrid.script([{ status: 400, body: { errors: [{ message: 'The from address does not match a verified Sender Identity.', field: 'from', help: null }] } }]);
    const refusedBatch = await agentSend(sgWs, 'send_bulk', { template, recipients: [{ email: `x-${sgWs}@example.com`, merge: { deal: '5%' } }] });
    expect(refusedBatch.result).toMatchObject({ sent: [], failed: [{ email: `x-${sgWs}@example.com`, code: 'sendgrid_400', message: 'from: The from address does not match a verified Sender Identity.', retry_safe: false }] });

    // A revoked key: the command fails vendor_unauthorized and the connection needs re-authorization.
    sendgrid.keys.delete(SG_KEY);
    const refused = await agentSend(sgWs, 'send_bulk', { template, recipients: [{ email: `late-${sgWs}@example.com`, merge: { deal: '1%' } }] });
    expect(refused).toMatchObject({ status: 'failed', error: { code: 'vendor_unauthorized' } });
    await expect.poll(() => settings.get(wsConnectorKey(sgWs, 'email'))?.connection, { timeout: 10_000 }).toBe('needs_reauth');
    sendgrid.keys.add(SG_KEY);
  });

  it('keeps credentials out of logs, outcome events, dead letters and HTTP answers (item 18)', async () => {
    const outcomes = [...(await readAll(infra.bus, defaultOutcomeTopic('email', ws))), ...(await readAll(infra.bus, defaultOutcomeTopic('email', sgWs)))];
    const events = (await Promise.all(outcomes.map((r) => infra.codec.decode(r.value!)))).map((e) => JSON.stringify(e)).join('\n');
    const dead = (await readAll(infra.bus, topics.deadLetter('email'))).map((r) => JSON.stringify(r.headers) + r.value?.toString()).join('\n');
    const http = JSON.stringify((await api('/v1/emails/send', { to: ['x'] }, { authorization: `Bearer ${PLATFORM_TOKEN}x` })).body);
    const logs = dispatcher.output.join('\n');
    expect(logs.length).toBeGreaterThan(0);
    const metrics = await (await fetch(`${dispatcher.url}/metrics`)).text();
    expect(metrics).toMatch(/ionflux_email_messages_total\{[^}]*provider="smtp"[^}]*state="sent"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/ionflux_email_messages_total\{[^}]*provider="sendgrid"[^}]*state="throttled"[^}]*\} [1-9]/);
    for (const s of [SMTP_PASS, PLATFORM_TOKEN, SG_KEY, SG_BAD_KEY]) {
      for (const text of [logs, events, dead, http]) expect(text).not.toContain(s);
    }
    // No error of the dispatcher's own (kafkajs reports its retried CONCURRENT_TRANSACTIONS at error level).
    expect(dispatcher.output.filter((l) => l.includes('"level":50') && !l.includes('"kafkajs"'))).toEqual([]);
  });
});

/**
 * The platform's own SendGrid account refused (docs/email.md, "At most once"): the workspace sending
 * platform mail has nothing to re-authorize, and a bulk stopped part-way lists who got it.
 */
describe("email dispatcher: the platform's SendGrid account refused mid-way, through Kafka", () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let sendgrid: SendgridSimulator;
  let dispatcher: RunningDispatcher;
  let settings: KafkaTable<WorkspaceConnector>;
  const PLATFORM_KEY = secret('SG.platform-');
  const TOKEN = secret('platform-token-');
  const ws = uid('ws');
  const api = (path: string, body: unknown) =>
    fetch(`${dispatcher.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
  const refusedKey = { status: 401, body: { errors: [{ field: null, message: 'The provided authorization grant is invalid, expired, or revoked' }] } };

  beforeAll(async () => {
    infra = await realInfra('email-platform-refused-test');
    sendgrid = await startSendgridSimulator({ keys: [PLATFORM_KEY] });
    settings = await openWorkspaceConnectors(infra);
    dispatcher = await startDispatcher({ EMAIL_PROVIDER: 'sendgrid', SENDGRID_API_KEY: PLATFORM_KEY, SENDGRID_BASE_URL: sendgrid.url, EMAIL_FROM: 'news@ionflux.test', EMAIL_API_TOKEN: TOKEN, EMAIL_SENDGRID_BATCH_SIZE: '2', EMAIL_SEND_CONCURRENCY: '1' });
  }, 180_000);

  afterAll(async () => {
    await dispatcher?.stop();
    await Promise.all([sendgrid?.close(), settings?.close(), infra?.close()]);
  });

  it('a bulk whose platform key is refused after its first batch succeeds listing those sent, the rest failed provider_unauthorized; the workspace is not marked needs_reauth', async () => {
    const recipients = Array.from({ length: 4 }, (_, i) => ({ email: `p${i}-${ws}@example.com`, name: `P${i}` }));
    sendgrid.script([{ pass: true }, refusedKey]);
    const out = await api('/v1/emails/bulk?wait=25s', { workspace_id: ws, template: { id: 'notice', subject: 'Notice for {{name}}', text: 'Hello {{name}}' }, recipients });
    expect(out.status, JSON.stringify(out.body)).toBe(200);
    expect(out.body).toMatchObject({ status: 'succeeded', result: { sent: recipients.slice(0, 2).map((r) => ({ email: r.email })), unknown: [], failed: recipients.slice(2).map((r) => ({ email: r.email, code: 'provider_unauthorized', retry_safe: true })) } });
    expect(sendgrid.sent.flatMap((m) => (m.body.personalizations as { to: { email: string }[] }[]).map((p) => p.to[0]!.email))).toEqual(recipients.slice(0, 2).map((r) => r.email));

    // Nobody sent at all: the command fails provider_unauthorized, and still marks nothing.
    sendgrid.script([refusedKey]);
    const single = await api('/v1/emails/send?wait=25s', { workspace_id: ws, to: [`one-${ws}@example.com`], subject: 'x', text: 'x' });
    expect(single.body).toMatchObject({ status: 'failed', error: { code: 'provider_unauthorized' } });
    // The worker writes a connection's state before the outcome: read the table to its end, then look.
    await settings.catchUp();
    expect(settings.get(wsConnectorKey(ws, 'email'))?.connection).not.toBe('needs_reauth');
  }, 120_000);
});

/**
 * A relay (or API) that refuses every message (docs/email.md, "A provider that refuses
 * everything"). Each unit of a bulk waits on a refusing provider for up to its budget,
 * EMAIL_PROVIDER_WAIT_MAX_MS (the default 120 s here): before, 30 SMTP recipients, five at a time,
 * took six times 120 s before the sender heard anything (a 1,000-recipient bulk ran into the
 * action's 30 minutes), and 60 SendGrid recipients in batches of 10 took two times 120 s. Now the
 * bulk stops once the provider took nothing for EMAIL_PROVIDER_OUTAGE_MS (10 s here), and its
 * outcome lists who was not sent. What the sender sees is asked for as a sender would: the same
 * request with its Idempotency-Key and ?wait, until the outcome is in (at most 3 minutes).
 */
describe('email dispatcher: a relay or API refusing every message, through Kafka', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let relay: SmtpCapture;
  let sendgrid: SendgridSimulator;
  let dispatcher: RunningDispatcher;
  const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });
  const TOKEN = secret('platform-token-');
  const SG = secret('SG.outage-');
  const ws = uid('ws');
  const sgWs = uid('ws');
  const template = { id: 'notice', subject: 'Notice for {{name}}', text: 'Hello {{name}}' };
  type Bulk = { status: string; result: { total: number; sent: { email: string; message_id: string }[]; failed: { email: string; code: string; message: string; retry_safe: boolean }[]; unknown: unknown[]; suppressed: unknown[] } };

  /** The bulk's outcome, asked for again with the same key and body until it is in; fails past 3 minutes. */
  async function bulkOutcome(workspace: string, recipients: { email: string; name: string }[]): Promise<Bulk> {
    const key = uid('idem');
    const deadline = Date.now() + 180_000;
    for (;;) {
      const res = await fetch(`${dispatcher.url}/v1/emails/bulk?wait=30s`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, 'Idempotency-Key': key }, body: JSON.stringify({ workspace_id: workspace, template, recipients }) });
      const body = (await res.json()) as Bulk;
      if (res.status === 200) return body;
      expect(res.status, JSON.stringify(body)).toBe(202);
      if (Date.now() > deadline) throw new Error('the bulk had no outcome after 3 minutes');
    }
  }
  const people = (prefix: string, n: number, workspace = ws) => Array.from({ length: n }, (_, i) => ({ email: `${prefix}${i}-${workspace}@example.com`, name: `${prefix.toUpperCase()}${i}` }));
  const received = async (emails: string[]) => (await relay.messages()).filter((m) => m.rcpt_tos.some((r) => emails.includes(r.toLowerCase())));

  beforeAll(async () => {
    infra = await realInfra('email-outage-test');
    relay = await startSmtpCapture();
    sendgrid = await startSendgridSimulator({ keys: [SG] });
    dispatcher = await startDispatcher({ EMAIL_PROVIDER: 'smtp', EMAIL_SMTP_URL: relay.url, EMAIL_FROM: 'news@ionflux.test', EMAIL_API_TOKEN: TOKEN, SENDGRID_BASE_URL: sendgrid.url, EMAIL_SENDGRID_BATCH_SIZE: '10', EMAIL_PROVIDER_OUTAGE_MS: '10000' });
    // sgWs sends through its own SendGrid account (the simulator's).
    const ok = await runCli(['connect', 'email', '--workspace', sgWs, '--field', 'provider=sendgrid', '--field', 'from=news@shop.test'], { env: { SENDGRID_BASE_URL: sendgrid.url }, input: `${SG}\n` });
    expect(ok.code, ok.stderr).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await dispatcher?.stop();
    await Promise.all([relay?.close(), sendgrid?.close(), infra?.close()]);
    await vault.delete(secretPaths.workspace(sgWs, 'email')).catch(() => undefined);
  });

  it('a relay answering 421 to every message: the bulk ends listing everyone failed provider_unavailable, safe to send again; re-sent once the relay serves, each gets one message', async () => {
    await relay.refuse({ at: 'MAIL', reply: '421 4.3.2 Service not available, closing transmission channel' });
    const recipients = people('o', 30);
    const emails = recipients.map((r) => r.email);
    const out = await bulkOutcome(ws, recipients);
    expect(out).toMatchObject({ status: 'succeeded', result: { total: 30, sent: [], unknown: [], suppressed: [] } });
    expect(out.result.failed.map((f) => f.email)).toEqual(emails);
    for (const f of out.result.failed) expect(f).toMatchObject({ code: 'provider_unavailable', message: expect.stringMatching(/^not sent, safe to send again: .*421 4\.3\.2 Service not available/), retry_safe: true });
    expect(await received(emails)).toEqual([]);

    await relay.refuse(null);
    const again = await bulkOutcome(ws, recipients.filter((r) => out.result.failed.some((f) => f.email === r.email)));
    expect(again.result).toMatchObject({ failed: [], unknown: [] });
    expect(again.result.sent.map((s) => s.email)).toEqual(emails);
    for (const e of emails) expect((await received([e])).length, e).toBe(1);
  }, 420_000);

  it('a relay that takes three messages and then answers 421 to every one: those three are listed sent, the rest failed; re-sent, everyone has exactly one message', async () => {
    await relay.refuse({ at: 'MAIL', reply: '421 4.7.0 Try again later, closing connection', allow: 3 });
    const recipients = people('t', 30);
    const emails = recipients.map((r) => r.email);
    const out = await bulkOutcome(ws, recipients);
    expect(out).toMatchObject({ status: 'succeeded', result: { total: 30, unknown: [], suppressed: [] } });
    const got = await received(emails);
    expect(got).toHaveLength(3);
    // Listed sent: exactly those the relay has, with the Message-ID it received.
    expect(out.result.sent.map((s) => [s.email, s.message_id]).sort()).toEqual(got.map((m) => [m.rcpt_tos[0]!.toLowerCase(), m.message_id]).sort());
    expect(out.result.failed).toHaveLength(27);
    for (const f of out.result.failed) expect(f).toMatchObject({ code: 'provider_unavailable', message: expect.stringContaining('safe to send again'), retry_safe: true });

    await relay.refuse(null);
    const again = await bulkOutcome(ws, recipients.filter((r) => out.result.failed.some((f) => f.email === r.email)));
    expect(again.result).toMatchObject({ failed: [], unknown: [] });
    expect(again.result.sent).toHaveLength(27);
    for (const e of emails) expect((await received([e])).length, e).toBe(1);
  }, 420_000);

  it('SendGrid answering 503 to every request: the bulk ends listing everyone failed provider_unavailable, nothing accepted', async () => {
    const recipients = people('s', 60, sgWs);
    // More answers than the bulk can ask for: every request is refused.
    sendgrid.script(Array.from({ length: 1000 }, () => ({ status: 503 })));
    const before = sendgrid.requests.length;
    const out = await bulkOutcome(sgWs, recipients);
    expect(out).toMatchObject({ status: 'succeeded', result: { total: 60, sent: [], unknown: [], suppressed: [] } });
    expect(out.result.failed.map((f) => f.email)).toEqual(recipients.map((r) => r.email));
    for (const f of out.result.failed) expect(f).toMatchObject({ code: 'provider_unavailable', message: expect.stringContaining('safe to send again'), retry_safe: true });
    expect(sendgrid.requests.length).toBeGreaterThan(before);
    expect(sendgrid.requests.slice(before).every((r) => r.status === 503)).toBe(true);
    expect(sendgrid.sent).toEqual([]);
  }, 420_000);
});

/**
 * A relay that answers 421 to one recipient (at RCPT TO, closing the connection) while it serves
 * everyone else. nodemailer's pool gives a message back to its queue when a reused connection fails
 * transiently before a byte of the message was read, tries it on another idle connection, and after
 * 5 such closes fails it with "Reached maximum number of retries after connection was closed" and no
 * reply code: the dispatcher took that for a connection broken mid-message and listed the recipient
 * `unknown` (never to be re-sent), though the relay never had it. With more than 5 pooled connections
 * idle (8 here, warmed by the bulk's first recipients), each try lands on a reused one.
 */
describe('email dispatcher: a relay answering 421 to one recipient, through Kafka', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let relay: SmtpCapture;
  let dispatcher: RunningDispatcher;
  const TOKEN = secret('platform-token-');
  const ws = uid('ws');

  beforeAll(async () => {
    infra = await realInfra('email-closing-test');
    relay = await startSmtpCapture();
    dispatcher = await startDispatcher({ EMAIL_PROVIDER: 'smtp', EMAIL_SMTP_URL: relay.url, EMAIL_FROM: 'news@ionflux.test', EMAIL_API_TOKEN: TOKEN, EMAIL_SEND_CONCURRENCY: '8', EMAIL_SMTP_MAX_CONNECTIONS: '8', EMAIL_PROVIDER_WAIT_MAX_MS: '15000' });
  }, 180_000);

  afterAll(async () => {
    await dispatcher?.stop();
    await Promise.all([relay?.close(), infra?.close()]);
  });

  it('the others are sent, it is failed provider_unavailable and retry_safe once its wait budget is spent; never unknown', async () => {
    const others = Array.from({ length: 24 }, (_, i) => ({ email: `c${i}-${ws}@example.com`, name: `C${i}` }));
    const closing = { email: `closing-${ws}@example.com`, name: 'Closing' };
    const recipients = [...others.slice(0, 12), closing, ...others.slice(12)];
    const body = JSON.stringify({ workspace_id: ws, template: { id: 'notice', subject: 'Notice for {{name}}', text: 'Hello {{name}}' }, recipients });
    const key = uid('idem');
    // Asked again with the same key, as a sender would, until the outcome is in.
    const ask = async () => {
      const r = await fetch(`${dispatcher.url}/v1/emails/bulk?wait=30s`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, 'Idempotency-Key': key }, body });
      return { status: r.status, body: (await r.json()) as { status: string; result: { sent: { email: string }[] } } };
    };
    let res = await ask();
    for (const deadline = Date.now() + 150_000; res.status === 202 && Date.now() < deadline; ) res = await ask();
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({
      status: 'succeeded',
      result: { total: 25, unknown: [], suppressed: [], failed: [{ email: closing.email, code: 'provider_unavailable', message: expect.stringMatching(/^not sent, safe to send again: /), retry_safe: true }] },
    });
    expect(res.body.result.sent.map((s) => s.email).sort()).toEqual(others.map((o) => o.email).sort());
    expect(await relay.to(closing.email)).toHaveLength(0);
    for (const o of others) expect(await relay.to(o.email), o.email).toHaveLength(1);
  }, 200_000);
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaTable, jsonValue } from '../shared/bus/table/table.ts';
import { topics } from '../shared/bus/topics.ts';
import { encodeCommandJson } from '../shared/commands/envelope.ts';
import { defaultOutcomeTopic } from '../shared/commands/outcome.ts';
import { openWorkspaceConnectors, wsConnectorKey } from '../shared/commands/state.ts';
import { templateDigest } from '../shared/connectors/catalog/email.ts';
import { UNITS_TOPIC, unitSchema, type Unit } from '../services/email-dispatcher/ledger.ts';
import { startDispatcher, type RunningDispatcher } from './helpers/email.ts';
import { readAll, realInfra, uid } from './helpers/infra.ts';
import { startSmtpCapture, type SmtpCapture } from './helpers/smtp.ts';

type Infra = Awaited<ReturnType<typeof realInfra>>;

/**
 * Approves `template` for `ws` and sends it to `count` recipients (`<prefix><i>-<ws>@example.com`)
 * with one send_bulk; returns them, the command id and how many of its units are `sent` so far.
 */
async function startBulk(infra: Infra, units: KafkaTable<Unit>, ws: string, template: { id: string; subject: string; text: string }, count: number, prefix: string) {
  const table = await openWorkspaceConnectors(infra);
  await table.set(wsConnectorKey(ws, 'email'), { settings: { approved_templates: { [template.id]: { digest: templateDigest(template), approved_at: new Date().toISOString(), approved_by: 'test' } } }, updated_at: new Date().toISOString() });
  await table.close();
  const recipients = Array.from({ length: count }, (_, i) => ({ email: `${prefix}${i}-${ws}@example.com`, name: `${prefix.toUpperCase()}${i}` }));
  const commandId = uid('bulk');
  await infra.bus.publish({ topic: topics.command('email'), key: ws, value: encodeCommandJson({ command_id: commandId, workspace_id: ws, agent_id: 'agent-bulk', service: 'email', action: 'send_bulk', params: { template, recipients } }) });
  const sentUnits = () => units.entries().filter(([k, u]) => k.startsWith(`${ws}:${commandId}:`) && u.state === 'sent').length;
  return { recipients, commandId, sentUnits };
}

/**
 * RELIABILITY.md item 31: a bulk email killed halfway, then restarted: every recipient gets it
 * exactly once, counted by what the SMTP server received.
 *
 * Determinism: the dispatcher sends one message a second (EMAIL_RATE_PER_SECOND=1, burst 1, one
 * at a time). Each message is recorded `sent` in the ledger as soon as the server answered 250;
 * the test kills the process (SIGKILL) right after it sees the third `sent` record, which is
 * while the dispatcher waits ~1 s on the rate limiter for the fourth. The only ambiguous state, a
 * unit `sending` at the kill, needs the kill to land in the few milliseconds between writing
 * `sending` and hearing 250; it would be listed `unknown`, never sent again.
 */
describe('email bulk killed mid-send (SIGKILL) and restarted', () => {
  let infra: Infra;
  let smtp: SmtpCapture;
  let dispatcher: RunningDispatcher;
  let units: KafkaTable<Unit>;
  const ws = uid('ws');

  beforeAll(async () => {
    infra = await realInfra('email-crash-test');
    smtp = await startSmtpCapture();
    units = new KafkaTable<Unit>({ ...infra, topic: UNITS_TOPIC, parse: jsonValue((v) => unitSchema.parse(v)) });
    await units.start(60_000);
    dispatcher = await startDispatcher({ EMAIL_PROVIDER: 'smtp', EMAIL_SMTP_URL: smtp.url, EMAIL_FROM: 'news@ionflux.test', EMAIL_RATE_PER_SECOND: '1', EMAIL_RATE_BURST: '1', EMAIL_SEND_CONCURRENCY: '1' });
  }, 180_000);

  afterAll(async () => {
    await dispatcher?.stop();
    await Promise.all([smtp?.close(), units?.close(), infra?.close()]);
  });

  it('sends to every recipient exactly once across the crash (item 31)', async () => {
    const { recipients, commandId, sentUnits } = await startBulk(infra, units, ws, { id: 'digest', subject: 'Weekly digest for {{name}}', text: 'Hello {{name}}' }, 8, 'r');
    await expect.poll(sentUnits, { timeout: 60_000, interval: 20 }).toBeGreaterThanOrEqual(3);
    await dispatcher.kill();
    const atKill = (await smtp.messages()).length;
    expect(atKill).toBeGreaterThanOrEqual(3);
    expect(atKill).toBeLessThan(recipients.length);

    await dispatcher.start();
    let outcome: { status: string; result: { sent: { email: string; message_id: string }[]; unknown: { email: string }[]; failed: unknown[]; suppressed: unknown[] } } | undefined;
    await expect
      .poll(async () => {
        const events = await Promise.all((await readAll(infra.bus, defaultOutcomeTopic('email', ws))).map((r) => infra.codec.decode(r.value!)));
        const e = events.find((x) => x.correlation_id === commandId);
        outcome = e ? JSON.parse(e.payload_json) : undefined;
        return outcome?.status;
      }, { timeout: 90_000, interval: 500 })
      .toBe('succeeded');

    const captured = await smtp.messages();
    for (const r of recipients) {
      const got = captured.filter((m) => m.rcpt_tos.includes(r.email));
      expect(got.length, `${r.email} received ${got.length} times`).toBe(1);
      const listed = outcome!.result.sent.find((s) => s.email === r.email);
      expect(listed?.message_id).toBe(got[0]!.message_id);
    }
    expect(captured).toHaveLength(recipients.length);
    expect(outcome!.result).toMatchObject({ unknown: [], failed: [], suppressed: [] });
    expect(outcome!.result.sent).toHaveLength(recipients.length);
  }, 180_000);
});

/**
 * RELIABILITY.md item 11 with a long command: a second dispatcher joins the group while the first
 * is halfway through a bulk send. The rebalance asks the first to hand over: it stops between
 * recipients and rejoins, and whichever worker gets the partition resumes from the ledger. Before,
 * the first went on sending past the rebalance timeout, was dropped from the group, and the new
 * owner resumed the same command beside it (two senders, two outcomes). The timeout is 5 s here,
 * the send about 15 s, so only a handover keeps one sender.
 */
describe('email bulk while a second dispatcher joins its group (a rebalance mid-send)', () => {
  let infra: Infra;
  let smtp: SmtpCapture;
  const running: RunningDispatcher[] = [];
  let units: KafkaTable<Unit>;
  const ws = uid('ws');
  const env = () => ({ EMAIL_PROVIDER: 'smtp', EMAIL_SMTP_URL: smtp.url, EMAIL_FROM: 'news@ionflux.test', EMAIL_RATE_PER_SECOND: '2', EMAIL_RATE_BURST: '1', EMAIL_SEND_CONCURRENCY: '1', COMMAND_GROUP_PREFIX: group, COMMAND_REBALANCE_TIMEOUT_MS: '5000' });
  const group = uid('rb');

  beforeAll(async () => {
    infra = await realInfra('email-rebalance-test');
    smtp = await startSmtpCapture();
    units = new KafkaTable<Unit>({ ...infra, topic: UNITS_TOPIC, parse: jsonValue((v) => unitSchema.parse(v)) });
    await units.start(60_000);
    running.push(await startDispatcher(env()));
  }, 180_000);

  afterAll(async () => {
    await Promise.all(running.map((d) => d.stop()));
    await Promise.all([smtp?.close(), units?.close(), infra?.close()]);
  });

  it('hands the send over: every recipient once, one outcome', async () => {
    const { recipients, commandId, sentUnits } = await startBulk(infra, units, ws, { id: 'digest', subject: 'Digest for {{name}}', text: 'Hello {{name}}' }, 30, 'h');
    await expect.poll(sentUnits, { timeout: 60_000, interval: 20 }).toBeGreaterThanOrEqual(3);
    running.push(await startDispatcher(env())); // joins the group: a rebalance while the first sends

    const finals = async () => (await Promise.all((await readAll(infra.bus, defaultOutcomeTopic('email', ws))).map((r) => infra.codec.decode(r.value!)))).filter((e) => e.correlation_id === commandId).map((e) => JSON.parse(e.payload_json) as { status: string; result: { sent: { email: string }[] } });
    await expect.poll(async () => (await finals()).map((o) => o.status), { timeout: 120_000, interval: 500 }).toEqual(['succeeded']);
    // Past the rebalance timeout and a few more sends: a second sender or outcome would show by now.
    await new Promise((r) => setTimeout(r, 6000));
    expect((await finals()).map((o) => o.status)).toEqual(['succeeded']);
    const captured = await smtp.messages();
    for (const r of recipients) expect(captured.filter((m) => m.rcpt_tos.includes(r.email)).length, r.email).toBe(1);
    expect(captured).toHaveLength(recipients.length);
    expect((await finals())[0]!.result.sent).toHaveLength(recipients.length);
    // The first dispatcher did hand over (the path under test ran).
    expect(running[0]!.output.join('\n')).toContain("record handed over to the partition's next owner");
  }, 240_000);
});

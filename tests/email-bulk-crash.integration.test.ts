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
  let infra: Awaited<ReturnType<typeof realInfra>>;
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
    const template = { id: 'digest', subject: 'Weekly digest for {{name}}', text: 'Hello {{name}}' };
    const table = await openWorkspaceConnectors(infra);
    await table.set(wsConnectorKey(ws, 'email'), { settings: { approved_templates: { digest: { digest: templateDigest(template), approved_at: new Date().toISOString(), approved_by: 'test' } } }, updated_at: new Date().toISOString() });
    await table.close();
    const recipients = Array.from({ length: 8 }, (_, i) => ({ email: `r${i}-${ws}@example.com`, name: `R${i}` }));
    const commandId = uid('bulk');
    await infra.bus.publish({ topic: topics.command('email'), key: ws, value: encodeCommandJson({ command_id: commandId, workspace_id: ws, agent_id: 'agent-bulk', service: 'email', action: 'send_bulk', params: { template, recipients } }) });

    const sentUnits = () => units.entries().filter(([k, u]) => k.startsWith(`${ws}:${commandId}:`) && u.state === 'sent').length;
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

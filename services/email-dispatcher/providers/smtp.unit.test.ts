import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllowlist } from '../../../shared/net/allowlist.ts';
import { classifySmtpError, closeSmtpTransports, smtpProvider } from './smtp.ts';

const settings = { maxConnections: 1, requireTls: false, rejectUnauthorized: true, timeoutMs: 5000 };
const message = { from: 'news@shop.test', to: ['a@x.io'], subject: 's', text: 't', headers: {}, attachments: [], messageId: '<m@shop.test>', customArgs: {} };

describe("a workspace's SMTP server: each connection goes to the address just checked", () => {
  let server: Server;
  let port: number;
  let connections = 0;
  beforeAll(async () => {
    // A local listener standing for an internal service: it counts who reached it, then hangs up.
    server = createServer((socket) => (connections++, socket.destroy()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    closeSmtpTransports();
    await new Promise((r) => server.close(r));
  });

  it('a name that resolves to a private address at connect time (rebinding after the check) reaches nothing', async () => {
    let lookups = 0;
    // The check before the command passed on a public answer; the name now answers loopback.
    const rebinding = async () => (lookups++, [{ address: '127.0.0.1', family: 4 }]);
    const provider = smtpProvider(`smtp://user:pass@localhost:${port}`, settings, { allow: () => [], lookup: rebinding });
    const sent = await provider.send(message, new AbortController().signal);
    expect(connections).toBe(0);
    expect(sent).toMatchObject({ ok: false, kind: 'rejected', code: 'smtp_host_forbidden' });
    expect(lookups).toBeGreaterThan(0);
  });

  it('an address the allowlist names (with its port) is connected to, at the checked address', async () => {
    const provider = smtpProvider(`smtp://user:pass@relay.allowed.test:${port}`, settings, { allow: () => parseAllowlist(`127.0.0.1:${port}`), lookup: async () => [{ address: '127.0.0.1', family: 4 }] });
    await provider.send(message, new AbortController().signal);
    expect(connections).toBeGreaterThan(0); // the pool tries again when the server hangs up before its greeting
  });
});

describe('classifySmtpError: whose refusal a 4xx is', () => {
  const smtpError = (message: string, f: { code: string; responseCode: number; command: string }) => Object.assign(new Error(message), f);

  it('a 421 at any step is the server closing the channel; a 4xx to RCPT TO is of its recipient; another 4xx of neither', () => {
    expect(classifySmtpError(smtpError('Mail command failed: 421 4.3.2 Service not available', { code: 'EENVELOPE', responseCode: 421, command: 'MAIL FROM' }))).toMatchObject({ kind: 'not_sent', code: 'smtp_421', closing: true });
    expect(classifySmtpError(smtpError('Invalid greeting. response=421 busy', { code: 'EPROTOCOL', responseCode: 421, command: 'CONN' }))).toMatchObject({ kind: 'not_sent', closing: true });
    const deferred = classifySmtpError(smtpError("Can't send mail - all recipients were rejected: 451 4.7.1 greylisted", { code: 'EENVELOPE', responseCode: 451, command: 'RCPT TO' }));
    expect(deferred).toMatchObject({ kind: 'not_sent', code: 'smtp_451', recipient: true });
    expect(deferred).not.toHaveProperty('closing');
    const data = classifySmtpError(smtpError('Message failed: 452 4.3.1 Insufficient system storage', { code: 'EMESSAGE', responseCode: 452, command: 'DATA' }));
    expect(data).toMatchObject({ kind: 'not_sent', code: 'smtp_452' });
    expect(data).not.toHaveProperty('recipient');
    expect(data).not.toHaveProperty('closing');
  });

  it("the pool's 'Reached maximum number of retries' (every try closed before the message was read) is not sent, the server closing; unless we closed the pool", () => {
    // nodemailer 10: SMTPPool._failDeliveryOnConnectionClose, no reply code.
    const spent = Object.assign(new Error('Reached maximum number of retries after connection was closed'), { code: 'ECONNECTION' });
    expect(classifySmtpError(spent)).toMatchObject({ kind: 'not_sent', code: 'smtp_connection_closed', closing: true, message: expect.stringContaining('before the message was sent') });
    // Our own close (shutdown) fails a message in flight with the same text: it may have been taken.
    expect(classifySmtpError(spent, { poolClosed: true })).toMatchObject({ kind: 'ambiguous' });
    // A connection that broke otherwise, with no reply, stays ambiguous.
    expect(classifySmtpError(Object.assign(new Error('Connection closed unexpectedly'), { code: 'ECONNECTION' }))).toMatchObject({ kind: 'ambiguous' });
  });
});

import { afterEach, describe, expect, it, vi } from 'vitest';
import { sendgridProvider } from './providers/sendgrid.ts';
import { classifySmtpError } from './providers/smtp.ts';
import { suppressionFor } from './suppressions.ts';

const ev = (type: string) => ({ event_type: `email.delivery.${type}`, event_id: 'e1', timestamp: 1 });

describe('what a delivery event means for an address', () => {
  it('suppresses hard bounces, permanent drops, spam reports and unsubscribes; not soft bounces; a resubscribe lifts an unsubscribe', () => {
    expect(suppressionFor(ev('bounced'), { type: 'bounce', reason: '500 unknown recipient' })).toMatchObject({ add: { reason: 'bounced' } });
    expect(suppressionFor(ev('bounced'), { type: 'blocked' })).toBeNull();
    expect(suppressionFor(ev('dropped'), { reason: 'Bounced Address' })).toMatchObject({ add: { reason: 'dropped' } });
    expect(suppressionFor(ev('dropped'), { reason: 'Exceeded daily quota' })).toBeNull();
    for (const reason of ['Unsubscribed Address', 'Spam Reporting Address', 'Invalid']) expect(suppressionFor(ev('dropped'), { reason }), reason).toMatchObject({ add: { reason: 'dropped', detail: reason } });
  });

  it("does not suppress an address for a drop about the message or the account (SendGrid's other drop reasons)", () => {
    for (const reason of ['Spam Content (if spam checker app enabled)', 'Spam Content', 'Invalid SMTPAPI header', 'Recipient List over Package Quota']) expect(suppressionFor(ev('dropped'), { reason }), reason).toBeNull();
    expect(suppressionFor(ev('spam_reported'), {})).toMatchObject({ add: { reason: 'complained' } });
    expect(suppressionFor(ev('group_unsubscribed'), {})).toMatchObject({ add: { reason: 'unsubscribed' } });
    expect(suppressionFor(ev('group_resubscribed'), {})).toEqual({ remove: 'unsubscribed' });
    expect(suppressionFor(ev('delivered'), {})).toBeNull();
  });
});

describe('SMTP failures: could the server have taken the message?', () => {
  it('a reply code is certain (5xx refused, 4xx not taken); no connection is certain; a broken socket is not', () => {
    expect(classifySmtpError(Object.assign(new Error('550 no'), { responseCode: 550 }))).toMatchObject({ kind: 'rejected', code: 'smtp_550' });
    expect(classifySmtpError(Object.assign(new Error('451 later'), { responseCode: 451 }))).toMatchObject({ kind: 'not_sent' });
    expect(classifySmtpError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ESOCKET' }))).toMatchObject({ kind: 'not_sent' });
    expect(classifySmtpError(Object.assign(new Error('Invalid login'), { code: 'EAUTH' }))).toMatchObject({ kind: 'unauthorized' });
    expect(classifySmtpError(Object.assign(new Error('Connection closed unexpectedly'), { code: 'ECONNECTION' }))).toMatchObject({ kind: 'ambiguous' });
  });

  it('a connection not made in time (connect, greeting, TLS handshake) is certain: not sent, retried; a timeout once talking is not', () => {
    const timeout = (message: string, timeoutType: string) => Object.assign(new Error(message), { code: 'ETIMEDOUT', timeoutType, command: 'CONN' });
    expect(classifySmtpError(timeout('Connection timeout', 'CONNECT_TIMEOUT'))).toMatchObject({ kind: 'not_sent', code: 'smtp_etimedout' });
    expect(classifySmtpError(timeout('TLS handshake timed out', 'UPGRADE_TIMEOUT'))).toMatchObject({ kind: 'not_sent' });
    expect(classifySmtpError(timeout('Greeting never received', 'GREETING_TIMEOUT'))).toMatchObject({ kind: 'not_sent' });
    expect(classifySmtpError(timeout('Timeout', 'SOCKET_TIMEOUT'))).toMatchObject({ kind: 'ambiguous' });
  });

  it('a login refused for good (535) is bad credentials; a temporary answer to AUTH (454, SendGrid relay 451 out of credits) is not', () => {
    const auth = (reply: string) => Object.assign(new Error(`Invalid login: ${reply}`), { code: 'EAUTH', response: reply, responseCode: Number(reply.slice(0, 3)), command: 'AUTH PLAIN' });
    expect(classifySmtpError(auth('535 5.7.8 Authentication credentials invalid'))).toMatchObject({ kind: 'unauthorized' });
    expect(classifySmtpError(auth('454 4.7.0 Temporary authentication failure'))).toMatchObject({ kind: 'not_sent', code: 'smtp_454' });
    expect(classifySmtpError(auth('451 Authentication failed: Maximum credits exceeded'))).toMatchObject({ kind: 'not_sent', code: 'smtp_451' });
    expect(classifySmtpError(Object.assign(new Error('Missing credentials for "PLAIN"'), { code: 'EAUTH', command: 'API' }))).toMatchObject({ kind: 'unauthorized' });
  });
});

describe('SendGrid requests without an answer: could SendGrid have taken the message?', () => {
  afterEach(() => vi.unstubAllGlobals());
  /** What the provider makes of fetch failing the way undici does (TypeError 'fetch failed' with a coded cause). */
  const sendFailing = (code: string) => {
    vi.stubGlobal('fetch', async () => Promise.reject(Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(code), { code }) })));
    const message = { from: 'a@x.io', to: ['b@x.io'], subject: 's', text: 't', headers: {}, attachments: [], messageId: '<m@x.io>', customArgs: {} };
    return sendgridProvider('SG.key', { baseUrl: 'https://api.sendgrid.test', timeoutMs: 5000 }).send(message, new AbortController().signal);
  };
  it("not connected (refused, unresolvable, undici's connect timeout) is certain; a timeout or reset once connected is not", async () => {
    expect(await sendFailing('UND_ERR_CONNECT_TIMEOUT')).toMatchObject({ kind: 'not_sent', code: 'sendgrid_unreachable' });
    expect(await sendFailing('ECONNREFUSED')).toMatchObject({ kind: 'not_sent' });
    expect(await sendFailing('UND_ERR_HEADERS_TIMEOUT')).toMatchObject({ kind: 'ambiguous', code: 'sendgrid_no_answer' });
    expect(await sendFailing('ECONNRESET')).toMatchObject({ kind: 'ambiguous' });
  });
});

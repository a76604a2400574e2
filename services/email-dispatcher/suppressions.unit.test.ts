import { describe, expect, it } from 'vitest';
import { classifySmtpError } from './providers/smtp.ts';
import { suppressionFor } from './suppressions.ts';

const ev = (type: string) => ({ event_type: `email.delivery.${type}`, event_id: 'e1', timestamp: 1 });

describe('what a delivery event means for an address', () => {
  it('suppresses hard bounces, permanent drops, spam reports and unsubscribes; not soft bounces; a resubscribe lifts an unsubscribe', () => {
    expect(suppressionFor(ev('bounced'), { type: 'bounce', reason: '500 unknown recipient' })).toMatchObject({ add: { reason: 'bounced' } });
    expect(suppressionFor(ev('bounced'), { type: 'blocked' })).toBeNull();
    expect(suppressionFor(ev('dropped'), { reason: 'Bounced Address' })).toMatchObject({ add: { reason: 'dropped' } });
    expect(suppressionFor(ev('dropped'), { reason: 'Exceeded daily quota' })).toBeNull();
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

  it('a login refused for good (535) is bad credentials; a temporary answer to AUTH (454, SendGrid relay 451 out of credits) is not', () => {
    const auth = (reply: string) => Object.assign(new Error(`Invalid login: ${reply}`), { code: 'EAUTH', response: reply, responseCode: Number(reply.slice(0, 3)), command: 'AUTH PLAIN' });
    expect(classifySmtpError(auth('535 5.7.8 Authentication credentials invalid'))).toMatchObject({ kind: 'unauthorized' });
    expect(classifySmtpError(auth('454 4.7.0 Temporary authentication failure'))).toMatchObject({ kind: 'not_sent', code: 'smtp_454' });
    expect(classifySmtpError(auth('451 Authentication failed: Maximum credits exceeded'))).toMatchObject({ kind: 'not_sent', code: 'smtp_451' });
    expect(classifySmtpError(Object.assign(new Error('Missing credentials for "PLAIN"'), { code: 'EAUTH', command: 'API' }))).toMatchObject({ kind: 'unauthorized' });
  });
});

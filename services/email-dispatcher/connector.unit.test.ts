import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { templateDigest } from '../../shared/connectors/catalog/email.ts';
import { isPreapproved } from './connector.ts';
import { createSealer } from './seal.ts';

const d = { sealer: createSealer(randomBytes(32)) };
const template = { id: 't1', subject: 'Hello {{name}}', text: 'Hi {{name}}', html: '<p>Hi {{name}}</p>' };
const settings = { approved_templates: { t1: { digest: templateDigest(template), approved_at: 'now', approved_by: 'admin' } } };
const send = { to: [{ email: 'a@x.io', name: 'Ann' }, 'b@x.io'], subject: template.subject, text: template.text, html: template.html, template_id: 't1' };
const bulk = { template, recipients: [{ email: 'a@x.io', name: 'Ann', merge: { code: 'A1' } }, { email: 'b@x.io' }] };
const extras = {
  attachments: [{ filename: 'a.pdf', url: 'https://files.example/a.pdf' }],
  inline_attachments: [{ filename: 'a.txt', content_base64: Buffer.from('hi').toString('base64') }],
  reply_to: 'phish@evil.example',
  headers: { 'X-Campaign': 'x' },
  from: { email: 'noreply@x.io', name: 'Your bank' },
};

describe('template pre-approval: the approved template and its recipients, nothing else', () => {
  it('pre-approves an approved template alone, with per-recipient names and merge fields; empty extras add nothing', () => {
    expect(isPreapproved(d, 'send', send, settings)).toBe(true);
    expect(isPreapproved(d, 'send_bulk', bulk, settings)).toBe(true);
    expect(isPreapproved(d, 'send', { ...send, cc: [], bcc: [], attachments: [], headers: {} }, settings)).toBe(true);
    expect(isPreapproved(d, 'send_bulk', { ...bulk, attachments: [], headers: {} }, settings)).toBe(true);
  });

  it('does not pre-approve a send with attachments, reply_to, headers, cc, bcc or from', () => {
    const cases = { attachments: extras.attachments, inline: extras.inline_attachments, reply_to: extras.reply_to, headers: extras.headers, cc: ['c@x.io'], bcc: ['hidden@x.io'], from: extras.from };
    for (const [name, value] of Object.entries(cases)) {
      const field = name === 'inline' ? 'attachments' : name;
      expect(isPreapproved(d, 'send', { ...send, [field]: value }, settings), name).toBe(false);
    }
  });

  it('does not pre-approve a send_bulk with attachments, reply_to, headers or from', () => {
    for (const [name, value] of Object.entries({ attachments: extras.attachments, reply_to: extras.reply_to, headers: extras.headers, from: extras.from })) {
      expect(isPreapproved(d, 'send_bulk', { ...bulk, [name]: value }, settings), name).toBe(false);
    }
  });

  it('does not pre-approve edited content, an unknown template, or a seal that does not verify', () => {
    expect(isPreapproved(d, 'send', { ...send, text: 'Hi {{name}}, click here' }, settings)).toBe(false);
    expect(isPreapproved(d, 'send', { ...send, template_id: 't2' }, settings)).toBe(false);
    expect(isPreapproved(d, 'send', { ...send, template_id: undefined }, settings)).toBe(false);
    expect(isPreapproved(d, 'send_bulk', { ...bulk, template: { ...template, html: '<p>Hi</p>' } }, settings)).toBe(false);
    const forged = { command_id: 'c', workspace_id: 'w', expires_at: Date.now() + 60_000, mac: 'a'.repeat(64) };
    expect(isPreapproved(d, 'send', { ...send, platform_seal: forged }, settings)).toBe(false);
  });
});

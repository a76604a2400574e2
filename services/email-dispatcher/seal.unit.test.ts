import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isPreapproved } from './connector.ts';
import { canonical, createSealer } from './seal.ts';
import { templateDigest } from '../../shared/connectors/catalog/email.ts';

const sealer = createSealer(randomBytes(32));
const params = { to: ['a@x.io'], subject: 'Hi', text: 'Body' };

describe('platform seal and pre-approval', () => {
  it('verifies a seal over exactly these params, command and workspace; refuses edits, other keys and expired seals', () => {
    const sealed = sealer.seal('cmd-1', 'ws1', params);
    expect(sealer.verify(sealed)).toEqual({ command_id: 'cmd-1', workspace_id: 'ws1' });
    expect(sealer.verify({ ...sealed, to: ['b@x.io'] })).toBeNull();
    expect(createSealer(randomBytes(32)).verify(sealed)).toBeNull();
    expect(sealer.verify(sealer.seal('c', 'w', params, -1))).toBeNull();
    expect(canonical({ b: 1, a: [{ d: 2, c: 3 }] })).toBe('{"a":[{"c":3,"d":2}],"b":1}');
  });

  it('pre-approves a sealed command, or a template whose digest the workspace approved; an edited template is not', () => {
    const template = { id: 't1', subject: 'Hello {{name}}', text: 'x' };
    const settings = { approved_templates: { t1: { digest: templateDigest(template), approved_at: 'now', approved_by: 'admin' } } };
    const recipients = [{ email: 'a@x.io' }];
    expect(isPreapproved({ sealer }, 'send', sealer.seal('c', 'w', params), {})).toBe(true);
    expect(isPreapproved({ sealer }, 'send', params, {})).toBe(false);
    expect(isPreapproved({ sealer }, 'send_bulk', { template, recipients }, settings)).toBe(true);
    expect(isPreapproved({ sealer }, 'send_bulk', { template: { ...template, text: 'y' }, recipients }, settings)).toBe(false);
    expect(isPreapproved({ sealer }, 'send', { to: ['a@x.io'], subject: 'Hello {{name}}', text: 'x', template_id: 't1' }, settings)).toBe(true);
  });
});

import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.ts';
import { registerSecret } from './redact.ts';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) });
  return { logger: createLogger({ service: 'unit', destination }), lines };
}

describe('logger redaction', () => {
  it('keeps a token and an API key out of a line built from an object carrying them', () => {
    const { logger, lines } = capture();
    const token = 'shpat_0123456789abcdef0123456789abcdef';
    const apiKey = 'sk-proj-AAAABBBBCCCCDDDDEEEEFFFF';
    logger.info({ request: { headers: { authorization: `Bearer ${token}`, 'x-api-key': apiKey }, body: { access_token: token } }, openai: { apiKey } }, 'calling vendor');
    const line = lines.join('');
    expect(line).toContain('calling vendor');
    expect(line).not.toContain(token);
    expect(line).not.toContain(apiKey);
    expect(line).toContain('[REDACTED]');
  });

  it('masks a registered secret wherever it appears, in messages and errors too', () => {
    const { logger, lines } = capture();
    const secret = 'whsec_c2VjcmV0LXZhbHVlLWZvci10ZXN0cw==';
    registerSecret(secret);
    logger.warn({ err: new Error(`bad signature with ${secret}`), note: `key=${secret}` }, `verifying with ${secret}`);
    const line = lines.join('');
    expect(line).not.toContain(secret);
    expect(line).toContain('bad signature with [REDACTED]');
  });
});

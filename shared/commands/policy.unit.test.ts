import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FAILURES, policyFor, policyTableMarkdown } from './policy.ts';

describe('failure policy table', () => {
  it('is the table docs/commands.md shows (print it with `node --import tsx shared/commands/policy.ts`)', () => {
    const doc = readFileSync(new URL('../../docs/commands.md', import.meta.url), 'utf8');
    const shown = /<!-- policy-table:start -->\n([\s\S]*?)\n<!-- policy-table:end -->/.exec(doc)?.[1];
    expect(shown).toBe(policyTableMarkdown());
  });

  it('files vendor and handler codes under their rows', () => {
    expect(policyFor('vendor_http_410')).toBe(FAILURES.vendor_rejected);
    expect(policyFor('budget_exceeded')).toBe(FAILURES.handler_error);
    expect(policyFor('secret_store_unavailable')).toMatchObject({ retry: true, deadLetter: true });
  });
});

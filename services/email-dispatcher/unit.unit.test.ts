import { describe, expect, it } from 'vitest';
import { VendorError } from '../../shared/connectors/types.ts';
import { HandedOver } from '../../shared/errors.ts';
import { createLogger } from '../../shared/logger.ts';
import { memoryLedger } from './ledger.ts';
import type { SendResult } from './providers/types.ts';
import { Throttle } from './throttle.ts';
import { runUnit, type UnitJob } from './unit.ts';

const logger = createLogger({ service: 'test', level: 'silent' });
const deps = (ledger = memoryLedger()) => ({ ledger, providerThrottle: new Throttle(1000, 1000), workspaceThrottle: new Throttle(1000, 1000), waitBudgetMs: 5000, logger });
const job = (results: SendResult[], keys = ['ws:c:a@x.io']): UnitJob & { calls: number } => {
  const j = { keys, account: 'smtp:1', workspaceId: 'ws', messages: 1, messageId: '<m@x.io>', signal: new AbortController().signal, calls: 0, call: async () => (j.calls++, results.shift()!) };
  return j;
};

describe('runUnit: each unit handed to the provider at most once', () => {
  it('records sending before the call and sent after; a second run reports the record without calling', async () => {
    const d = deps();
    const j = job([{ ok: true, messageId: '<m@x.io>', accepted: ['a@x.io'], rejected: [] }]);
    expect(await runUnit(d, j)).toMatchObject({ state: 'sent', messageId: '<m@x.io>' });
    expect(d.ledger.entries.get('ws:c:a@x.io')).toMatchObject({ state: 'sent', message_id: '<m@x.io>' });
    const again = job([]);
    expect(await runUnit(d, again)).toMatchObject({ state: 'sent' });
    expect(again.calls).toBe(0);
  });

  it('reports a unit left sending (a crash mid-call) as unknown and never calls again', async () => {
    const d = deps();
    await d.ledger.write([['ws:c:a@x.io', { state: 'sending', at: 1, message_id: '<m@x.io>' }]]);
    const j = job([]);
    expect(await runUnit(d, j)).toEqual({ state: 'unknown', messageId: '<m@x.io>' });
    expect(j.calls).toBe(0);
  });

  it('retries what the provider certainly did not take (429 with Retry-After) and records a refusal as failed', async () => {
    const d = deps();
    const j = job([{ ok: false, kind: 'not_sent', code: 'sendgrid_429', message: 'too many requests', status: 429, retryAfterMs: 10 }, { ok: true, messageId: 'X1', accepted: [], rejected: [] }]);
    expect(await runUnit(d, j)).toMatchObject({ state: 'sent', messageId: 'X1' });
    expect(j.calls).toBe(2);
    const r = job([{ ok: false, kind: 'rejected', code: 'smtp_550', message: 'no such mailbox' }], ['ws:c:b@x.io']);
    expect(await runUnit(d, r)).toMatchObject({ state: 'failed', code: 'smtp_550' });
    expect(d.ledger.entries.get('ws:c:b@x.io')).toMatchObject({ state: 'failed' });
  });

  it('leaves an ambiguous failure as sending (reported unknown), gives up after the wait budget, and stops on refused credentials', async () => {
    const d = deps();
    expect(await runUnit(d, job([{ ok: false, kind: 'ambiguous', code: 'smtp_etimedout', message: 'timeout' }]))).toMatchObject({ state: 'unknown' });
    expect(d.ledger.entries.get('ws:c:a@x.io')?.state).toBe('sending');
    const short = { ...deps(), waitBudgetMs: 100 };
    expect(await runUnit(short, job([{ ok: false, kind: 'not_sent', code: 'sendgrid_503', message: 'down', status: 503, retryAfterMs: 5000 }]))).toMatchObject({ state: 'unavailable', status: 503 });
    await expect(runUnit(deps(), job([{ ok: false, kind: 'unauthorized', code: 'sendgrid_401', message: 'bad key' }]))).rejects.toBeInstanceOf(VendorError);
  });
});

describe("refused credentials: whose are they?", () => {
  it("the platform account's refused: provider_unauthorized (not a 401 that marks the workspace's connection), the unit left to do", async () => {
    const d = deps();
    const j = { ...job([{ ok: false, kind: 'unauthorized', code: 'sendgrid_401', message: 'bad key' }]), platform: true };
    const refused = runUnit(d, j);
    await expect(refused).rejects.toMatchObject({ code: 'provider_unauthorized', retryable: false });
    await expect(refused).rejects.not.toBeInstanceOf(VendorError);
    expect(d.ledger.entries.get('ws:c:a@x.io')?.state).toBe('pending');
  });
});

describe('runUnit when the command is handed over', () => {
  it('stops waiting for a throttling provider at the handover, recorded pending, and never calls again: the next owner sends it', async () => {
    const d = deps();
    const handover = new AbortController();
    const j = Object.assign(job([{ ok: false, kind: 'not_sent', code: 'sendgrid_429', message: 'too many requests', status: 429, retryAfterMs: 2000 }, { ok: true, messageId: 'X1', accepted: [], rejected: [] }]), { handover: handover.signal });
    const run = runUnit(d, j);
    setTimeout(() => handover.abort(new HandedOver('the group is rebalancing')), 50);
    await expect(run).rejects.toBeInstanceOf(HandedOver);
    expect(j.calls).toBe(1);
    expect(d.ledger.entries.get('ws:c:a@x.io')?.state).toBe('pending');
    // Handed over before its turn at the rate limit: nothing is recorded, nothing sent.
    const waiting = Object.assign(job([{ ok: true, messageId: 'X2', accepted: [], rejected: [] }], ['ws:c:b@x.io']), { handover: AbortSignal.abort(new HandedOver('leaving')) });
    await expect(runUnit(d, waiting)).rejects.toBeInstanceOf(HandedOver);
    expect(waiting.calls).toBe(0);
    expect(d.ledger.entries.get('ws:c:b@x.io')).toBeUndefined();
  });
});

describe('throttling is per provider account', () => {
  it("a 429 on one account holds that account's next units, not another account's", async () => {
    const d = deps();
    const throttled = job([{ ok: false, kind: 'not_sent', code: 'sendgrid_429', message: 'too many requests', status: 429, retryAfterMs: 60_000 }]);
    // Budget too short to wait a minute: the unit ends unavailable, and the account stays blocked.
    expect(await runUnit({ ...d, waitBudgetMs: 1000 }, { ...throttled, account: 'sendgrid:a' })).toMatchObject({ state: 'unavailable', retryAfterMs: 60_000 });
    expect(d.providerThrottle.take('sendgrid:a')).toBeGreaterThan(50_000);
    expect(d.providerThrottle.take('sendgrid:b')).toBe(0);
  });
});

describe('an SMTP 421: the server is closing the channel', () => {
  it("holds the account's other units for the back-off too, not only the unit that got it; another 4xx holds nothing", async () => {
    const d = deps();
    const closing = job([{ ok: false, kind: 'not_sent', code: 'smtp_421', message: '421 4.3.2 Service not available', closing: true }]);
    expect(await runUnit({ ...d, waitBudgetMs: 0 }, { ...closing, account: 'smtp:a' })).toMatchObject({ state: 'unavailable', code: 'smtp_421' });
    expect(d.providerThrottle.take('smtp:a')).toBeGreaterThan(0);
    const deferred = job([{ ok: false, kind: 'not_sent', code: 'smtp_451', message: '451 4.7.1 greylisted', recipient: true }], ['ws:c:b@x.io']);
    expect(await runUnit({ ...d, waitBudgetMs: 0 }, { ...deferred, account: 'smtp:b' })).toMatchObject({ state: 'unavailable', code: 'smtp_451' });
    expect(d.providerThrottle.take('smtp:b')).toBe(0);
  });
});

import { describe, expect, it } from 'vitest';
import { defaultTopicSpecFor } from '../../shared/bus/kafka/provision.ts';
import { topics } from '../../shared/bus/topics.ts';
import { REPLAY_LEDGER } from './dlq-guard.ts';

const DAY = 24 * 3600_000;

describe('the dlq replay ledger', () => {
  it('expires entries, but not before the dead letters they guard can have left their DLQ topic (its retention plus a 7-day segment roll)', () => {
    const ledger = defaultTopicSpecFor(REPLAY_LEDGER)?.configs ?? {};
    const dlq = defaultTopicSpecFor(topics.deadLetter('connector-worker'))?.configs ?? {};
    expect(ledger['cleanup.policy']).toBe('compact,delete');
    expect(Number(ledger['retention.ms'])).toBeGreaterThanOrEqual(Number(dlq['retention.ms']) + 7 * DAY);
  });
});

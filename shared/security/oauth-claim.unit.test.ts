import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../bus/memory.ts';
import { jsonValue, KafkaTable } from '../bus/table/table.ts';
import type { OutgoingRecord } from '../bus/types.ts';
import { createLogger } from '../logger.ts';
import { accountClaims, claimSchema, CLAIMS_TOPIC, type Claim, type ClaimOutcome, type FencedBusFactory } from './oauth-claim.ts';

const logger = createLogger({ service: 'claim-unit', level: 'silent' });

/**
 * Kafka's fencing as the claims rely on it: connecting a producer bumps its transactional id's
 * epoch, and a producer whose epoch is not the id's latest has its sends refused. A refused
 * producer is renewed, as the hub's does: its next send connects (fencing) again.
 * `beforeSend` lets a test hold a send to interleave callbacks.
 */
function fencing(bus: MemoryBus, beforeSend: (id: string) => Promise<void> = async () => undefined) {
  const epochs = new Map<string, number>();
  const factory: FencedBusFactory = (id) => {
    let mine = 0;
    const connect = async () => {
      mine = (epochs.get(id) ?? 0) + 1;
      epochs.set(id, mine);
    };
    return {
      connect,
      async publishAtomic(records: OutgoingRecord[]) {
        if (mine === 0) await connect();
        await beforeSend(id);
        if (epochs.get(id) !== mine) {
          mine = 0;
          throw new Error('The producer attempted to use a producer id which is currently assigned to its transactional id (fenced)');
        }
        return bus.publishAtomic(records);
      },
      close: async () => undefined,
    } as unknown as ReturnType<FencedBusFactory>;
  };
  return factory;
}

async function setup(beforeSend?: (id: string) => Promise<void>, now?: () => number) {
  const bus = new MemoryBus(1);
  const table = new KafkaTable<Claim>({ bus, logger, topic: CLAIMS_TOPIC, parse: jsonValue((v) => claimSchema.parse(v)) });
  await table.start();
  return { bus, table, claims: accountClaims({ table, fencedBus: fencing(bus, beforeSend), transactionalPrefix: 'ionflux-shopify-sync-claim', now }) };
}

const outcomeOf = (o: ClaimOutcome) => (o.won ? 'won' : `lost to ${o.holder?.workspaceId ?? 'unknown'}`);

describe('account claims', () => {
  it('two callbacks checking at once: the one that fenced the other wins, the other is told; nothing of the loser is written', async () => {
    let bConnected!: () => void;
    const bIn = new Promise<void>((r) => (bConnected = r));
    let sends = 0;
    // A's claim is held until B has connected (and so fenced A): both checked an empty table.
    const { bus, table, claims } = await setup(async () => {
      if (sends++ === 0) await bIn;
    });
    const a = claims.claim('shopify:s.myshopify.com', 'ws-a', async (o) => outcomeOf(o));
    await new Promise((r) => setImmediate(r));
    const b = claims.claim('shopify:s.myshopify.com', 'ws-b', async (o) => outcomeOf(o));
    bConnected();
    const [lostA, wonB] = await Promise.all([a, b]);
    expect(wonB).toBe('won');
    expect(lostA).toMatch(/^lost to (ws-b|unknown)$/); // B's claim, or already released by it
    // B's claim was released when its use ended without finishing; A wrote nothing.
    const written = (await bus.readToEnd(CLAIMS_TOPIC)).map((r) => r.value && (JSON.parse(r.value.toString()) as Claim).workspaceId);
    expect(written).toEqual(['ws-b', null]);
    expect(table.get('shopify:s.myshopify.com')).toBeUndefined();
  });

  it('a callback arriving while a claim is held is refused naming the holder; the holder, fenced by it in passing, still finishes', async () => {
    const { bus, table, claims } = await setup();
    const key = 'tiktok:open-1';
    let later: Promise<string> | undefined;
    await claims.claim(key, 'ws-a', async (o) => {
      expect(o.won).toBe(true);
      later = claims.claim(key, 'ws-b', async (p) => outcomeOf(p));
      expect(await later).toBe('lost to ws-a');
      if (o.won) await o.held.finish([{ topic: 'ionflux.state.links', key, value: JSON.stringify({ workspaceId: 'ws-a' }) }]);
    });
    expect(table.get(key)).toBeUndefined();
    expect((await bus.readToEnd('ionflux.state.links')).map((r) => r.key?.toString())).toEqual([key]);
  });

  it('a claim that lapsed (its callback died) no longer holds the account', async () => {
    let clock = 1_000_000;
    const { claims } = await setup(undefined, () => clock);
    const key = 'shopify:t.myshopify.com';
    await claims.claim(key, 'ws-a', async (o) => {
      if (!o.won) throw new Error('expected to win');
      clock += 10 * 60_000; // the callback hangs past its claim
      expect(() => o.held.assertLive()).toThrow(/took too long/);
      expect(await claims.claim(key, 'ws-b', async (p) => outcomeOf(p))).toBe('won');
      // Its writes are refused: another callback holds the account now.
      await expect(o.held.finish([])).rejects.toThrow(/took too long/);
    });
  });
});

import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { createKafkaBus, type KafkaBus } from '../bus/kafka/bus.ts';
import { KafkaTable, jsonValue } from '../bus/table/table.ts';
import { topics } from '../bus/topics.ts';
import type { OutgoingRecord } from '../bus/types.ts';
import { kafkaAuth, type BaseEnv } from '../config.ts';
import { HubError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Runtime } from '../runtime.ts';

/**
 * Who is connecting a vendor account right now: `<vendor>:<account>` (the link's key) -> the
 * workspace whose OAuth callback holds it, until when. Kept in the compacted
 * `ionflux.state.oauth-claims`; a finished connection tombstones its claim in the transaction
 * that links the account, and an abandoned one (a crash mid-callback) lapses at `until`.
 */
export const claimSchema = z.object({ id: z.string(), workspaceId: z.string(), until: z.number() });
export type Claim = z.infer<typeof claimSchema>;

export const CLAIMS_TOPIC = topics.state('oauth-claims');

/** How long a callback may take from its claim to linking the account (exchange, secret store, webhook subscriptions). */
export const CLAIM_TTL_MS = 5 * 60_000;
/** A claim with less than this left is not used to store anything: its writes must land before it lapses. */
const CLAIM_MARGIN_MS = 30_000;

/** A claim this callback won: it stores the connection through `finish`, or gives the account back with `release`. */
export interface HeldClaim {
  readonly claim: Claim;
  /** Throws `claim_lost` when the claim is about to lapse, so nothing is stored past it. */
  assertLive(): void;
  /** Publishes `records` in one transaction with the claim's tombstone, only while the claim is still this one's. */
  finish(records: OutgoingRecord[]): Promise<void>;
  /** Tombstones the claim if it is still this one's (a failed exchange, an account linked elsewhere). */
  release(): Promise<void>;
}

export type ClaimOutcome = { won: true; held: HeldClaim } | { won: false; holder: Claim | undefined };

export interface AccountClaims {
  /**
   * Claims `key` for `workspaceId`, or says who holds it. Exactly one of callbacks racing for one
   * account wins, whichever instances they reach; `use` runs with the outcome, and a won claim
   * that `use` did not finish is released when it returns or throws.
   */
  claim<T>(key: string, workspaceId: string, use: (outcome: ClaimOutcome) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A producer whose transactional id is the account's: connecting it fences every earlier holder of that id. */
export type FencedBusFactory = (transactionalId: string) => Pick<KafkaBus, 'connect' | 'publishAtomic' | 'close'>;

/**
 * Why a transactional id per account: the claims table keeps the latest value per key, so a
 * check-then-write on it is only safe if no one else writes the key between the check and the
 * write. Every callback for the account uses the same transactional id (`<prefix>-<key>`), in
 * every instance of the deployment; connecting it bumps the id's epoch, so Kafka aborts and
 * refuses the transaction of whichever callback connected before. A callback therefore reads
 * the table only after fencing every earlier one, and its claim commits only if no later one
 * fenced it (and then read this claim, or wrote its own because this one never committed). The
 * claim is read back after the write: a commit whose answer was lost still counts as won.
 */
export function accountClaims(d: { table: KafkaTable<Claim>; fencedBus: FencedBusFactory; transactionalPrefix: string; ttlMs?: number; now?: () => number; logger?: Logger }): AccountClaims {
  const ttlMs = d.ttlMs ?? CLAIM_TTL_MS;
  const now = d.now ?? Date.now;
  const live = (c: Claim | undefined) => (c && c.until > now() ? c : undefined);

  return {
    async claim(key, workspaceId, use) {
      const bus = d.fencedBus(`${d.transactionalPrefix}-${key}`);
      try {
        await bus.connect();
        await d.table.fresh();
        const holder = live(d.table.get(key));
        if (holder) return await use({ won: false, holder });
        const mine: Claim = { id: randomUUID(), workspaceId, until: now() + ttlMs };
        // A failure here is a later callback's fence, or Kafka's: the table says which.
        await bus.publishAtomic([d.table.record(key, mine)]).catch(() => undefined);
        await d.table.fresh();
        const after = d.table.get(key);
        if (after?.id !== mine.id) return await use({ won: false, holder: live(after) });
        d.table.applyLocal(key, mine);
        const held = heldClaim(d.table, bus, key, mine, now);
        try {
          return await use({ won: true, held });
        } finally {
          // Not finished (refused, failed, or thrown): the account is free again at once.
          await held.release().catch((e: unknown) => d.logger?.warn({ err: e, key }, 'claim not released; it lapses on its own'));
        }
      } finally {
        await bus.close().catch(() => undefined);
      }
    },
    close: () => d.table.close(),
  };
}

function heldClaim(table: KafkaTable<Claim>, bus: ReturnType<FencedBusFactory>, key: string, mine: Claim, now: () => number): HeldClaim {
  let done = false;
  const assertLive = () => {
    if (mine.until - now() < CLAIM_MARGIN_MS) throw new HubError('claim_lost', 'this connection took too long and was given up; start again', { retryable: true });
  };
  /**
   * Writes while the claim is this one's. A callback that came later and found this claim
   * live fenced this producer on its way (it wrote nothing): the failed send renewed the
   * producer, so the next one fences that callback in turn and goes through.
   */
  const write = async (records: OutgoingRecord[]) => {
    for (let attempt = 1; ; attempt++) {
      assertLive();
      try {
        await bus.publishAtomic([...records, table.record(key, undefined)]);
        table.applyLocal(key, undefined);
        done = true;
        return;
      } catch (e) {
        await table.fresh();
        if (table.get(key)?.id !== mine.id) throw new HubError('claim_lost', 'another connection of this account took over; start again', { cause: e });
        if (attempt >= 5) throw e;
      }
    }
  };
  return {
    claim: mine,
    assertLive,
    finish: (records) => write(records),
    async release() {
      if (done) return;
      await write([]).catch((e: unknown) => {
        // Lost or lapsed: nothing of this one's to give back.
        if (!(e instanceof HubError && e.code === 'claim_lost')) throw e;
      });
    },
  };
}

/**
 * The claims of one service: the table (in memory: it holds only connections under way) and a
 * producer per claim on the service's brokers, as its principal, closed when the claim ends.
 */
export async function openAccountClaims(rt: Pick<Runtime, 'bus' | 'logger' | 'service'>, env: BaseEnv, transactionalPrefix: string): Promise<AccountClaims> {
  const table = new KafkaTable<Claim>({ bus: rt.bus, logger: rt.logger, topic: CLAIMS_TOPIC, parse: jsonValue((v) => claimSchema.parse(v)) });
  await table.start();
  const fencedBus: FencedBusFactory = (transactionalId) =>
    createKafkaBus({ brokers: env.KAFKA_BROKERS, clientId: `${env.KAFKA_CLIENT_ID}-${rt.service}-claim`, auth: kafkaAuth(env), logger: rt.logger, transactionalId, topicDefaults: { partitions: env.KAFKA_TOPIC_PARTITIONS, replicationFactor: env.KAFKA_REPLICATION_FACTOR } });
  return accountClaims({ table, fencedBus, transactionalPrefix, logger: rt.logger });
}

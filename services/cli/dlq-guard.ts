import { z } from 'zod';
import { DLQ_HEADERS } from '../../shared/bus/dead-letter.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { Bus, OutgoingRecord } from '../../shared/bus/types.ts';
import { commandEnvShape } from '../../shared/commands/service.ts';
import { parseEnv } from '../../shared/config.ts';
import { ingesterEnv } from '../webhook-ingester/env.ts';

/**
 * What keeps `ionflux dlq replay` from running something twice. The workers remember a command
 * (and the ingester a delivery) only for their dedupe windows, and a replayed record is new to the
 * broker (command topics stamp it with the replay's time), so past those windows nothing but the
 * CLI itself knows a dead letter was replayed or how old its record is.
 */

/**
 * Every replay, keyed `<dlq topic>:<partition>:<offset>`: compacted (the latest replay of each
 * dead letter) and deleted after 37 days (shared/bus/kafka/provision.ts). An entry is needed as
 * long as its dead letter can be replayed, i.e. is on its ionflux.dlq.* topic: 30 days, and up
 * to a segment's roll (7 days) more, counted from when it was dead-lettered, which is before it
 * was replayed. For a command or a webhook delivery the age refusal takes over after the dedupe
 * window anyway; a dead letter of any other topic has only the ledger.
 */
export const REPLAY_LEDGER = topics.state('dlq-replays');

/**
 * The transactional id of every `ionflux dlq replay` of one dead-letter topic, in every terminal.
 * A run connects its producer before it reads the ledger, which bumps the id's epoch: Kafka aborts
 * what an earlier run had open and refuses its later transactions (as for OAuth callbacks,
 * shared/security/oauth-claim.ts). So the run that connected last reads every entry the earlier
 * ones committed, and an earlier one publishes nothing more: each dead letter goes out once.
 */
export const replayTransactionalId = (dlqTopic: string) => `ionflux-cli-dlq-replay-${dlqTopic}`;

/** Errors of Kafka refusing a transaction because a later producer took over its transactional id. */
const FENCED = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'INVALID_PRODUCER_ID_MAPPING']);

/** Whether a publish failed because another run fenced this one (the error or one of its causes says so). */
export function fencedOut(e: unknown): boolean {
  for (let c = e, depth = 0; c && depth < 8; c = (c as { cause?: unknown }).cause, depth++) {
    const err = c as { type?: string; code?: number; message?: string };
    if (FENCED.has(err.type ?? '') || err.code === 47 || err.code === 90 || /fenced|old epoch/i.test(err.message ?? '')) return true;
  }
  return false;
}

/**
 * On a replayed command: the time (ms) of the first record of the chain, when the dead letter was
 * itself the dead letter of a replay. The replayed record's own broker time is the replay's.
 */
export const ORIGINAL_AT_HEADER = 'ionflux.replayed_original_at';

const replaySchema = z.object({ at: z.string(), by: z.string(), topic: z.string(), forced: z.boolean().optional() });
export type Replay = z.infer<typeof replaySchema>;

export const ledgerKey = (dlqTopic: string, partition: number, offset: string) => `${dlqTopic}:${partition}:${offset}`;

/** The replays recorded so far (an unreadable entry counts as a replay: it was written by one). */
export async function readReplays(bus: Bus): Promise<Map<string, Replay>> {
  const out = new Map<string, Replay>();
  for (const r of await bus.readToEnd(REPLAY_LEDGER, { timeoutMs: 60_000 })) {
    const key = r.key?.toString('utf8');
    if (!key) continue;
    if (!r.value) {
      out.delete(key);
      continue;
    }
    let parsed: Replay | undefined;
    try {
      parsed = replaySchema.parse(JSON.parse(r.value.toString('utf8')));
    } catch {
      parsed = undefined;
    }
    out.set(key, parsed ?? { at: new Date(Number(r.timestamp)).toISOString(), by: 'unknown', topic: 'unknown' });
  }
  return out;
}

export const replayRecord = (key: string, replay: Replay): OutgoingRecord => ({ topic: REPLAY_LEDGER, key, value: JSON.stringify(replay) });

/** The consumers' dedupe windows, as the services read them from the same variables (the CLI's environment). */
export function dedupeWindows(env: NodeJS.ProcessEnv = process.env): { commandMs: number; webhookMs: number } {
  const e = parseEnv(z.object({ COMMAND_DEDUPE_WINDOW_HOURS: commandEnvShape.COMMAND_DEDUPE_WINDOW_HOURS, WEBHOOK_DEDUPE_HOURS: ingesterEnv.shape.WEBHOOK_DEDUPE_HOURS }), env);
  return { commandMs: e.COMMAND_DEDUPE_WINDOW_HOURS * 3600_000, webhookMs: e.WEBHOOK_DEDUPE_HOURS * 3600_000 };
}

export const isCommandTopic = (topic: string) => topic.startsWith('ionflux.cmd.');

/** What a dead letter's age is measured from: its original record's time, or why it is not known. */
export type OriginalTime = { at: number } | { gone: string } | { unknown: string };

/** The record a dead letter came from, where it still is: `<topic>` -> partition -> offsets. */
type Wanted = Map<string, Map<number, Set<string>>>;

/**
 * The broker times of the records dead letters came from, read from their topics (command topics
 * use LogAppendTime, so the time is the broker's, not the sender's). A record no longer there was
 * removed by retention: as old as the topic keeps records at least.
 */
export async function originTimes(bus: Bus, wanted: Wanted): Promise<Map<string, OriginalTime>> {
  const out = new Map<string, OriginalTime>();
  for (const [topic, partitions] of wanted) {
    const offsets = new Map((await bus.offsets(topic)).map((p) => [p.partition, p]));
    const from = new Map<number, string>();
    const open = new Map<number, Set<string>>();
    for (const [partition, wantedOffsets] of partitions) {
      const p = offsets.get(partition);
      for (const offset of wantedOffsets) {
        const id = `${topic}/${partition}/${offset}`;
        if (!p || BigInt(offset) >= BigInt(p.high)) out.set(id, { unknown: `${topic} holds no offset ${offset} in partition ${partition}` });
        else if (BigInt(offset) < BigInt(p.low)) out.set(id, { gone: `its record is no longer on ${topic} (removed by the topic's retention)` });
        else {
          const first = from.get(partition);
          if (first === undefined || BigInt(offset) < BigInt(first)) from.set(partition, offset);
          open.set(partition, (open.get(partition) ?? new Set()).add(offset));
        }
      }
    }
    if (!open.size) continue;
    // Partitions with nothing wanted start at their end, so only what is asked for is read.
    for (const p of offsets.values()) if (!from.has(p.partition)) from.set(p.partition, p.high);
    let done!: () => void;
    const found = new Promise<void>((resolve) => (done = resolve));
    const reader = await bus.read({
      topic,
      from,
      onBatch: (b) => {
        const left = open.get(b.partition);
        if (!left) return;
        for (const r of b.records) if (left.delete(r.offset)) out.set(`${topic}/${b.partition}/${r.offset}`, { at: Number(r.timestamp) });
        // Offsets passed without a record (an aborted transaction's) are not there to read.
        for (const o of left) if (BigInt(o) < BigInt(b.next)) left.delete(o);
        if (!left.size) open.delete(b.partition);
        if (!open.size) done();
      },
    });
    try {
      await Promise.race([found, reader.caughtUp, new Promise((_, reject) => setTimeout(() => reject(new Error(`${topic} was not read within 60 s`)), 60_000).unref())]);
    } finally {
      await reader.close();
    }
    for (const [partition, left] of open) for (const o of left) out.set(`${topic}/${partition}/${o}`, { unknown: `${topic} holds no committed record at ${partition}:${o}` });
  }
  return out;
}

export function wantedOrigins(letters: { headers: Record<string, Buffer> }[]): Wanted {
  const wanted: Wanted = new Map();
  for (const d of letters) {
    const topic = d.headers[DLQ_HEADERS.topic]?.toString('utf8');
    const partition = Number(d.headers[DLQ_HEADERS.partition]?.toString('utf8'));
    const offset = d.headers[DLQ_HEADERS.offset]?.toString('utf8') ?? '';
    if (!topic || !isCommandTopic(topic) || !Number.isInteger(partition) || partition < 0 || !/^\d+$/.test(offset)) continue;
    const partitions = wanted.get(topic) ?? new Map<number, Set<string>>();
    partitions.set(partition, (partitions.get(partition) ?? new Set()).add(offset));
    wanted.set(topic, partitions);
  }
  return wanted;
}

/** The earlier of the origin record's time and the chain's first time (a header can only make it older). */
export function commandTime(origin: OriginalTime | undefined, chainHeader: string | undefined): OriginalTime {
  const chain = Number(chainHeader);
  const chained = chainHeader !== undefined && Number.isFinite(chain) && chain > 0 ? chain : undefined;
  if (!origin) return chained !== undefined ? { at: chained } : { unknown: 'it names no record of a command topic' };
  if ('at' in origin) return { at: chained !== undefined ? Math.min(chained, origin.at) : origin.at };
  return origin;
}

/**
 * Why a dead letter must not be replayed without --force, or undefined: its record is older than
 * the consumer's dedupe window (the consumer no longer remembers what the first run did, and the
 * replayed record is new to it), or how old it is cannot be told.
 */
export function tooOld(a: { kind: 'command' | 'webhook'; time: OriginalTime; windowMs: number; now: number }): string | undefined {
  const setting = a.kind === 'command' ? 'COMMAND_DEDUPE_WINDOW_HOURS' : 'WEBHOOK_DEDUPE_HOURS';
  const forgets = a.kind === 'command' ? 'the worker no longer remembers running it, so it would run again (an approved write included)' : 'the ingester no longer remembers whether it was published since, so it could be published twice';
  const hours = (ms: number) => `${Math.round((ms / 3600_000) * 10) / 10} h`;
  if ('gone' in a.time) return `${a.time.gone}, so it is at least as old as that retention and the ${hours(a.windowMs)} dedupe window (${setting}) is taken as passed: ${forgets}`;
  if ('unknown' in a.time) return `its original record's time is not known (${a.time.unknown}), so it may be older than the ${hours(a.windowMs)} dedupe window (${setting}): ${forgets}`;
  const age = a.now - a.time.at;
  if (age <= a.windowMs) return undefined;
  return `its ${a.kind === 'command' ? 'command was written' : 'delivery was received'} ${hours(age)} ago, beyond the ${hours(a.windowMs)} dedupe window (${setting}): ${forgets}`;
}

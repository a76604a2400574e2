import { DLQ_HEADERS } from '../../shared/bus/dead-letter.ts';
import { createKafkaBus } from '../../shared/bus/kafka/bus.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { Bus, OutgoingRecord } from '../../shared/bus/types.ts';
import { inboxRecord } from '../../shared/ingest/inbox.ts';
import { kafkaAuth } from '../../shared/config.ts';
import { commandTime, dedupeWindows, fencedOut, isCommandTopic, ledgerKey, originTimes, ORIGINAL_AT_HEADER, readReplays, replayRecord, replayTransactionalId, tooOld, wantedOrigins, type OriginalTime, type Replay } from './dlq-guard.ts';
import { inboxDeliveryOf } from '../webhook-ingester/dead-letter.ts';
import { parse, UsageError } from './args.ts';
import { cliContext } from './context.ts';
import { cliActor, emit } from './integrations.ts';
import type { CliCommand } from './main.ts';

const USAGE = `ionflux dlq list <service> [--since <ISO time | 30m | 1h | 2d>] [--json]
       ionflux dlq replay <service> [--since <time>] [--offset <partition:offset | offset>] [--force] [--json]
Replay re-publishes each selected dead letter's key, value and original headers to the topic it
came from (plus ionflux.replayed_from=<partition:offset>), and records the replay in
ionflux.state.dlq-replays in the same transaction. A dead letter replayed before is skipped:
workers remember a command (and the ingester a delivery) only for their dedupe windows, so a
second replay after them would run it again. For the same reason a dead letter whose command was
written longer ago than COMMAND_DEDUPE_WINDOW_HOURS (168), or whose webhook delivery was received
longer ago than WEBHOOK_DEDUPE_HOURS (72), is refused (exit 1): the worker no longer knows it ran,
and would run it again, an approved write included. Set both as the services have them.
--force replays them anyway.
Two replays of one service's dead letters at once (two admins, two terminals) do not both
publish: the one started later takes over, and the earlier one stops before its next dead letter
(exit 1, saying so); what either replayed is skipped when it is run again.
Within those limits a command that already finished gets its recorded outcome again.
A webhook delivery the ingester parked (unlinked, schema_failed, ...) goes back to the ingest
inbox as it was received, and is published if it can be now (say, once its account is linked);
one already published since is not published again. A dead letter holding one event of a batch
delivery (SendGrid, WhatsApp) cannot be replayed and is skipped.`;

interface DeadLetter {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  /** Raw bytes, so a replay hands the original headers back unchanged. */
  headers: Record<string, Buffer>;
  timestamp: number;
}

const header = (d: DeadLetter, name: string) => d.headers[name]?.toString('utf8');
const failedAt = (d: DeadLetter) => Date.parse(header(d, DLQ_HEADERS.failedAt) ?? '') || d.timestamp;
const where = (d: DeadLetter) => `${d.partition}:${d.offset}`;

/** Everything in the topic up to its end at the call, oldest failure first. */
async function readDeadLetters(bus: Bus, topic: string): Promise<DeadLetter[]> {
  const records = await bus.readToEnd(topic, { timeoutMs: 60_000 });
  const out = records.map((r) => ({ topic, partition: r.partition, offset: r.offset, key: r.key, value: r.value, headers: r.rawHeaders ?? {}, timestamp: Number(r.timestamp) }));
  return out.sort((a, b) => failedAt(a) - failedAt(b) || a.partition - b.partition || Number(a.offset) - Number(b.offset));
}

/** `--since 2025-01-02T03:04:05Z` or a duration back from now: 90s, 30m, 1h, 2d. */
function sinceMs(s: string | undefined): number | undefined {
  if (!s) return undefined;
  const d = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(s);
  if (d) return Date.now() - Number(d[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[d[2] as 's' | 'm' | 'h' | 'd'];
  const t = /^\d{4}-\d{2}-\d{2}/.test(s) ? Date.parse(s) : NaN;
  if (Number.isNaN(t)) throw new UsageError(`--since ${s}: expected an ISO time or a duration like 30m, 1h, 2d`);
  return t;
}

/** Bytes as text an admin can read: non-printable bytes become '.', and at most 120 bytes. */
function preview(v: Buffer | null): string {
  if (!v) return '(null)';
  const text = v.subarray(0, 120).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
  return v.length > 120 ? `${text}…` : text;
}

function describe(d: DeadLetter, replays: Map<string, Replay>) {
  const replayed = replays.get(ledgerKey(d.topic, d.partition, d.offset));
  return {
    dlq_offset: where(d),
    failed_at: new Date(failedAt(d)).toISOString(),
    origin: { topic: header(d, DLQ_HEADERS.topic) ?? null, partition: header(d, DLQ_HEADERS.partition) ?? null, offset: header(d, DLQ_HEADERS.offset) ?? null },
    error_class: header(d, DLQ_HEADERS.errorClass) ?? null,
    error_message: header(d, DLQ_HEADERS.errorMessage) ?? null,
    attempts: header(d, DLQ_HEADERS.attempts) ?? null,
    key: d.key?.toString('utf8') ?? null,
    value_preview: preview(d.value),
    replayed_at: replayed?.at ?? null,
  };
}

export const dlqCommand: CliCommand = {
  summary: 'dlq list|replay <service> [--since <time>] [--offset <p:o>] [--force]   dead letters; replay skips those replayed before and refuses those past the dedupe windows',
  async run(args) {
    const [sub, ...rest] = args;
    if (sub !== 'list' && sub !== 'replay') throw new UsageError(`usage: ${USAGE}`);
    const { values, positionals } = parse(rest, { since: { type: 'string' }, offset: { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' } }, USAGE);
    if (positionals.length !== 1) throw new UsageError(`expected one service\nusage: ${USAGE}`);
    if (sub === 'list' && (values.offset || values.force)) throw new UsageError(`${values.offset ? '--offset' : '--force'} only goes with replay\nusage: ${USAGE}`);
    const topic = topics.deadLetter(positionals[0]!);
    const since = sinceMs(values.since);
    const offset = values.offset;
    if (offset !== undefined && !/^(\d+:)?\d+$/.test(offset)) throw new UsageError(`--offset ${offset}: expected <partition>:<offset> or <offset>`);
    const windows = dedupeWindows();
    const ctx = cliContext();
    // A replay and its ledger entry land together, in one transaction of the producer every
    // replay of this topic shares (see replayTransactionalId).
    const fenced = sub === 'replay' ? replayBus(ctx, topic) : undefined;
    try {
      let selected = (await readDeadLetters(ctx.bus, topic)).filter((d) => since === undefined || failedAt(d) >= since);
      if (offset !== undefined) {
        selected = selected.filter((d) => (offset.includes(':') ? where(d) === offset : d.offset === offset));
        if (selected.length > 1) throw new UsageError(`offset ${offset} exists in partitions ${selected.map((d) => d.partition).join(', ')} of ${topic}; say which: --offset <partition>:${offset}`);
        if (!selected.length) {
          process.stderr.write(`no dead letter at ${offset} in ${topic}${since !== undefined ? ' since then' : ''}\n`);
          return 1;
        }
      }
      // Fences every earlier replay of this topic first, so the ledger read next has all they wrote.
      if (selected.length) await fenced?.connect();
      const replays = await readReplays(ctx.bus);
      if (sub === 'list') {
        for (const d of selected) {
          const r = describe(d, replays);
          emit(values.json, r, `${r.dlq_offset}  ${r.failed_at}  from ${r.origin.topic}[${r.origin.partition}]@${r.origin.offset}  ${r.error_class}: ${r.error_message}  ${r.value_preview}${r.replayed_at ? `  (replayed ${r.replayed_at})` : ''}`);
        }
        if (!selected.length && !values.json) process.stdout.write(`no dead letters in ${topic}\n`);
        return 0;
      }
      return await replay(ctx, fenced!, selected, { dlqTopic: topic, json: values.json, force: values.force === true, replays, windows });
    } finally {
      await fenced?.close();
      await ctx.close();
    }
  },
};

/** The producer of `ionflux dlq replay <service>`: its transactional id is the dead-letter topic's, the same in every terminal. */
function replayBus(ctx: ReturnType<typeof cliContext>, dlqTopic: string) {
  const { env } = ctx;
  return createKafkaBus({ brokers: env.KAFKA_BROKERS, clientId: 'ionflux-cli', logger: ctx.logger, auth: kafkaAuth(env), transactionalId: replayTransactionalId(dlqTopic), topicDefaults: { partitions: env.KAFKA_TOPIC_PARTITIONS, replicationFactor: env.KAFKA_REPLICATION_FACTOR } });
}

interface ReplayOptions {
  dlqTopic: string;
  json: boolean | undefined;
  force: boolean;
  replays: Map<string, Replay>;
  windows: ReturnType<typeof dedupeWindows>;
}

async function replay(ctx: ReturnType<typeof cliContext>, producer: Pick<Bus, 'publishAtomic'>, selected: DeadLetter[], o: ReplayOptions): Promise<number> {
  const existing = new Set(await ctx.bus.listTopics());
  // Only commands' records are looked up; they are on their topics for the dedupe window.
  const origins = await originTimes(ctx.bus, wantedOrigins(selected.filter((d) => !o.replays.has(ledgerKey(d.topic, d.partition, d.offset)) || o.force)));
  let replayed = 0;
  let refused = 0;
  for (const d of selected) {
    const key = ledgerKey(d.topic, d.partition, d.offset);
    const origin = header(d, DLQ_HEADERS.topic);
    const time = origin && isCommandTopic(origin) ? commandTime(origins.get(`${origin}/${header(d, DLQ_HEADERS.partition)}/${header(d, DLQ_HEADERS.offset)}`), header(d, ORIGINAL_AT_HEADER)) : undefined;
    const record = !origin ? undefined : origin.startsWith('http:') ? webhookReplay(d) : sameRecord(d, origin, time);
    const skip = !origin
      ? 'it names no origin topic'
      : !record
        ? `it came from an HTTP delivery (${origin}) and holds one event of a batch, or comes from a hub that did not record its inbox record`
        : !existing.has(record.topic) ? `topic ${record.topic} does not exist` : undefined;
    if (skip || !record || !origin) {
      emit(o.json, { dlq_offset: where(d), replayed: false, reason: skip }, `skipped ${where(d)}: ${skip}`);
      continue;
    }
    const before = o.replays.get(key);
    if (before && !o.force) {
      const reason = `already replayed at ${before.at} by ${before.by}; a second replay could run it again once the dedupe window has passed (--force to replay it anyway)`;
      emit(o.json, { dlq_offset: where(d), replayed: false, reason, replayed_at: before.at }, `skipped ${where(d)}: ${reason}`);
      continue;
    }
    const old = o.force ? undefined : refusal(d, origin, time, o.windows);
    if (old) {
      refused += 1;
      const reason = `${old}; --force to replay it anyway`;
      emit(o.json, { dlq_offset: where(d), replayed: false, refused: true, reason }, `refused ${where(d)}: ${reason}`);
      continue;
    }
    const entry: Replay = { at: new Date().toISOString(), by: cliActor(), topic: record.topic, ...(o.force ? { forced: true } : {}) };
    let ack;
    try {
      [ack] = await producer.publishAtomic([record, replayRecord(key, entry)]);
    } catch (e) {
      if (!fencedOut(e)) throw e;
      // Another replay of this topic connected since this one read the ledger: it replays what it selected, this one stops.
      const reason = `another \`ionflux dlq replay\` of ${o.dlqTopic} started while this one ran and took over (Kafka fenced this run's transactions); this one stopped here and did not replay ${where(d)} or any dead letter after it. Run it again once the other has finished: what either replayed is skipped`;
      emit(o.json, { dlq_offset: where(d), replayed: false, stopped: true, reason }, `stopped at ${where(d)}: ${reason}`);
      emit(o.json, { replayed, skipped: selected.indexOf(d) - replayed - refused, refused, stopped: true, not_reached: selected.length - selected.indexOf(d) }, `replayed ${replayed} of ${selected.length} dead letters; stopped by another replay of ${o.dlqTopic}`);
      return 1;
    }
    o.replays.set(key, entry);
    replayed += 1;
    emit(o.json, { dlq_offset: where(d), replayed: true, topic: record.topic, partition: ack!.partition, offset: ack!.offset }, `replayed ${where(d)} -> ${record.topic} [${ack!.partition}]@${ack!.offset}`);
  }
  emit(o.json, { replayed, skipped: selected.length - replayed - refused, refused }, `replayed ${replayed} of ${selected.length} dead letters${refused ? `; ${refused} refused as past the dedupe window` : ''}`);
  return refused ? 1 : 0;
}

/** Why a dead letter past its consumer's dedupe window is not replayed (commands and webhook deliveries), or undefined. */
function refusal(d: DeadLetter, origin: string, time: OriginalTime | undefined, windows: ReplayOptions['windows']): string | undefined {
  if (isCommandTopic(origin)) return tooOld({ kind: 'command', time: time!, windowMs: windows.commandMs, now: Date.now() });
  if (origin.startsWith('http:')) {
    const received = Date.parse(header(d, 'webhook.received_at') ?? '');
    return tooOld({ kind: 'webhook', time: Number.isNaN(received) ? { unknown: 'it carries no webhook.received_at' } : { at: received }, windowMs: windows.webhookMs, now: Date.now() });
  }
  return undefined;
}

/**
 * The dead letter's own record again, on its origin topic, without the dlq.* headers; a command
 * keeps its first record's time, so a dead letter of this replay is not taken for a new command.
 */
function sameRecord(d: DeadLetter, origin: string, time: OriginalTime | undefined): OutgoingRecord {
  const headers: Record<string, Buffer | string> = Object.fromEntries(Object.entries(d.headers).filter(([k]) => !k.startsWith('dlq.')));
  headers['ionflux.replayed_from'] = where(d);
  if (time && 'at' in time) headers[ORIGINAL_AT_HEADER] = String(time.at);
  return { topic: origin, key: d.key, value: d.value, headers };
}

/** A parked webhook delivery as its inbox record, when the dead letter holds all of it. */
function webhookReplay(d: DeadLetter): OutgoingRecord | undefined {
  const headers = Object.fromEntries(Object.entries(d.headers).map(([k, v]) => [k, v.toString('utf8')]));
  const inbox = inboxDeliveryOf(headers, d.value, where(d));
  return inbox && inboxRecord(inbox.delivery, inbox.topic);
}

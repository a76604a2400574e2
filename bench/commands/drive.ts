/**
 * The load side of `make bench-commands` (bench/commands/run.sh). One process produces commands
 * and consumes their outcomes, so every latency is taken on one clock.
 *
 *   drive.ts prepare   deletes leftovers of an earlier run, creates the bench topics (3 partitions)
 *   drive.ts run       measures one system (BENCH_TARGET), prints one JSON document on stdout
 *   drive.ts cleanup   deletes the bench topics and consumer groups
 *
 * Targets:
 *   hub        plain JSON command envelopes on ionflux.cmd.noop keyed by workspace (bench0..bench15);
 *              outcomes read on ionflux.noop.ws_bench<i>.command.outcomes (read_committed)
 *   relay      the same records on ionflux.cmd.noop-relay, copied by bench/commands/relay.ts
 *              (RELAY_MODE=plain) to ionflux.cmd.noop-relay-out
 *   relay-txn  the same through relay.ts with RELAY_MODE=txn (ionflux.cmd.noop-relay-txn[-out])
 * Every command carries a `command_id` header; the worker sets the same header on its outcome
 * record (eventRecord in shared/commands/worker.ts) and the relay copies headers, so outcomes
 * are matched without decoding Avro. Hub outcomes are also checked to be `noop.command.succeeded`
 * (the ionflux.event_type header).
 *
 * Phases of `run`: warm-up (BENCH_WARMUP commands, not timed), throughput (a backlog of
 * BENCH_COMMANDS produced as fast as possible: first produce to last outcome consumed), steady
 * (half the measured throughput, capped at BENCH_MAX_RATE, paced every BENCH_TICK_MS for
 * BENCH_STEADY_SECONDS: per-command produce-to-outcome latency).
 * Env: BENCH_RUN_ID, BENCH_SYSTEM_PID and BENCH_BROKER_PID (CPU use of the measured process and of
 * the broker per phase), KAFKA_BROKERS.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Kafka, logLevel, type Admin, type Message } from 'kafkajs';
import { cpuSeconds } from '../cpu.ts';

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const WORKSPACES = Array.from({ length: 16 }, (_, i) => `bench${i}`);
const PARTITIONS = 3;
const HUB_CMD = 'ionflux.cmd.noop';
const HUB_STATE = 'ionflux.state.commands-noop';
const HUB_OUTCOMES = WORKSPACES.map((ws) => `ionflux.noop.ws_${ws}.command.outcomes`);
const TARGETS = {
  hub: { input: HUB_CMD, outputs: HUB_OUTCOMES },
  relay: { input: 'ionflux.cmd.noop-relay', outputs: ['ionflux.cmd.noop-relay-out'] },
  'relay-txn': { input: 'ionflux.cmd.noop-relay-txn', outputs: ['ionflux.cmd.noop-relay-txn-out'] },
  floor: { input: 'ionflux.cmd.noop-floor', outputs: WORKSPACES.map((ws) => `ionflux.cmd.noop-floor-out.${ws}`) },
} as const;
/** The floor's state topic (compacted, as the worker's): bench/commands/relay.ts RELAY_MODE=floor. */
const FLOOR_STATE = 'ionflux.cmd.noop-floor-state';
type Target = keyof typeof TARGETS;
/** Every topic this bench creates or makes the worker create (the worker adds its state topic and, on failures, its DLQ). */
const BENCH_TOPIC = /^(ionflux\.cmd\.noop(-relay(-txn)?(-out)?|-floor(-state|-out\.bench\d+)?)?|ionflux\.noop\.ws_[a-z0-9_-]+\.command\.outcomes|ionflux\.state\.commands-noop|ionflux\.dlq\.noop)$/;
const BENCH_GROUP = /^(ionflux-noop-worker|bench-commands-.*)$/;

const say = (msg: string) => process.stderr.write(`[drive] ${msg}\n`);
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function intEnv(name: string, fallback: number): number {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return v;
}

process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
const kafka = new Kafka({ brokers, clientId: 'bench-commands', logLevel: logLevel.WARN, connectionTimeout: 1000, requestTimeout: 30_000, ...(process.env.KAFKA_SASL_USERNAME ? { sasl: { mechanism: 'scram-sha-256' as const, username: process.env.KAFKA_SASL_USERNAME, password: process.env.KAFKA_SASL_PASSWORD ?? '' } } : {}) });

async function withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

async function deleteBenchTopics(admin: Admin): Promise<string[]> {
  const existing = (await admin.listTopics()).filter((t) => BENCH_TOPIC.test(t));
  if (existing.length) await admin.deleteTopics({ topics: existing, timeout: 30_000 });
  for (let i = 0; i < 120; i++) {
    if (!(await admin.listTopics()).some((t) => BENCH_TOPIC.test(t))) break;
    await sleep(250);
  }
  return existing;
}

async function prepare(): Promise<void> {
  await withAdmin(async (admin) => {
    const old = await deleteBenchTopics(admin);
    if (old.length) say(`deleted ${old.length} leftover bench topics`);
    const names = Object.values(TARGETS).flatMap((t) => [t.input, ...t.outputs]);
    const state = { topic: FLOOR_STATE, numPartitions: PARTITIONS, replicationFactor: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] };
    await admin.createTopics({ topics: [...names.map((topic) => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 })), state], waitForLeaders: true });
    say(`created ${names.length + 1} topics (${PARTITIONS} partitions each)`);
  });
}

async function cleanup(): Promise<void> {
  await withAdmin(async (admin) => {
    const deleted = await deleteBenchTopics(admin);
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => BENCH_GROUP.test(g));
    // One at a time: a group that is already gone (the driver's never commit) fails alone.
    for (const g of groups) await admin.deleteGroups([g]).catch(() => undefined);
    say(`deleted ${deleted.length} topics (${deleted.filter((t) => !/bench\d+$/.test(t)).join(', ')} and ${deleted.filter((t) => /bench\d+$/.test(t)).length} outcome topics) and ${groups.length} consumer groups`);
  });
}

// ---------------------------------------------------------------------------------------------

interface CpuMark { at: number; system: number | null; broker: number | null; driver: number }
const systemPid = Number(process.env.BENCH_SYSTEM_PID ?? 0) || undefined;
const brokerPid = Number(process.env.BENCH_BROKER_PID ?? 0) || undefined;
function cpuMark(): CpuMark {
  const u = process.cpuUsage();
  return { at: performance.now(), system: cpuSeconds(systemPid), broker: cpuSeconds(brokerPid), driver: (u.user + u.system) / 1e6 };
}
/** CPU use between two marks, in % of one core. */
function cpuBetween(a: CpuMark, b: CpuMark) {
  const wall = (b.at - a.at) / 1000;
  const pct = (x: number | null, y: number | null) => (x === null || y === null ? null : Math.round((100 * (y - x)) / wall));
  return { system_pct: pct(a.system, b.system), broker_pct: pct(a.broker, b.broker), driver_pct: pct(a.driver, b.driver) };
}

function percentiles(lat: Float64Array | number[]) {
  const s = Float64Array.from(lat).sort();
  const q = (p: number) => (s.length ? round(s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!, 2) : null);
  return { p50_ms: q(0.5), p90_ms: q(0.9), p99_ms: q(0.99), p999_ms: q(0.999), max_ms: s.length ? round(s[s.length - 1]!, 2) : null };
}

/** One phase's commands: when each was produced, when its outcome arrived. */
class Phase {
  readonly sentAt: Float64Array;
  readonly scheduledAt: Float64Array;
  readonly gotAt: Float64Array;
  received = 0;
  duplicates = 0;
  lastAt = 0;
  private waiter: (() => void) | undefined;
  constructor(readonly name: string, readonly n: number) {
    this.sentAt = new Float64Array(n);
    this.scheduledAt = new Float64Array(n);
    this.gotAt = new Float64Array(n);
  }
  got(i: number, now: number): void {
    if (i < 0 || i >= this.n) return;
    if (this.gotAt[i]! > 0) return void this.duplicates++;
    this.gotAt[i] = now;
    this.lastAt = now;
    if (++this.received === this.n) this.waiter?.();
  }
  /** Resolves when every outcome arrived, or when none arrived for `idleMs`. */
  async complete(idleMs: number): Promise<boolean> {
    const done = new Promise<void>((r) => (this.waiter = r));
    if (this.received === this.n) return true;
    let last = this.received;
    let lastChange = performance.now();
    for (;;) {
      const r = await Promise.race([done.then(() => true), sleep(500).then(() => false)]);
      if (r) return true;
      if (this.received !== last) {
        last = this.received;
        lastChange = performance.now();
      } else if (performance.now() - lastChange > idleMs) return false;
    }
  }
  latencies(from: 'sent' | 'scheduled'): Float64Array {
    const base = from === 'sent' ? this.sentAt : this.scheduledAt;
    const out: number[] = [];
    for (let i = 0; i < this.n; i++) if (this.gotAt[i]! > 0) out.push(this.gotAt[i]! - base[i]!);
    return Float64Array.from(out);
  }
}

const header = (v: Buffer | string | (Buffer | string)[] | undefined): string => (Array.isArray(v) ? String(v[v.length - 1] ?? '') : v === undefined ? '' : v.toString());

async function run(): Promise<void> {
  const target = (process.env.BENCH_TARGET ?? 'hub') as Target;
  if (!(target in TARGETS)) throw new Error(`BENCH_TARGET must be one of ${Object.keys(TARGETS).join(', ')}`);
  const { input, outputs } = TARGETS[target];
  const N = intEnv('BENCH_COMMANDS', 30_000);
  const WARMUP = intEnv('BENCH_WARMUP', 2000);
  const STEADY_S = intEnv('BENCH_STEADY_SECONDS', 10);
  const MAX_RATE = intEnv('BENCH_MAX_RATE', 20_000);
  const TICK_MS = intEnv('BENCH_TICK_MS', 5);
  const IDLE_MS = intEnv('BENCH_IDLE_TIMEOUT_MS', 30_000);
  const RUN = (process.env.BENCH_RUN_ID ?? String(Date.now())).replace(/[^A-Za-z0-9]/g, '');
  const loadStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

  const phases = new Map<string, Phase>();
  const wrongType = { count: 0, sample: '' };
  const commandMessage = (phase: string, i: number): Message => {
    const ws = WORKSPACES[i % WORKSPACES.length]!;
    const id = `${RUN}.${phase}.${i}`;
    const value = Buffer.from(JSON.stringify({ command_id: id, workspace_id: ws, agent_id: 'bench', service: 'noop', action: 'noop', params: { n: i } }));
    return { key: ws, value, headers: { command_id: id } };
  };

  // The outcome consumer first, positioned at the current end of every output partition.
  const ends = await withAdmin(async (admin) => Promise.all(outputs.map(async (t) => ({ t, offsets: await admin.fetchTopicOffsets(t) }))));
  const consumer = kafka.consumer({ groupId: `bench-commands-out-${RUN}-${target}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 100, sessionTimeout: 30_000 });
  await consumer.connect();
  for (const t of outputs) await consumer.subscribe({ topic: t, fromBeginning: false });
  const joined = new Promise<void>((r) => consumer.on(consumer.events.GROUP_JOIN, () => r()));
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const now = performance.now();
      for (const m of batch.messages) {
        const h = header(m.headers?.command_id);
        if (!h) continue;
        const [run, phase, idx] = h.split('.');
        if (run !== RUN) continue;
        if (target === 'hub') {
          const type = header(m.headers?.['ionflux.event_type']);
          if (type !== 'noop.command.succeeded') {
            wrongType.count++;
            wrongType.sample ||= type;
          }
        }
        phases.get(phase!)?.got(Number(idx), now);
      }
    },
  });
  for (const { t, offsets } of ends) for (const p of offsets) consumer.seek({ topic: t, partition: p.partition, offset: p.high });
  await joined;

  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false });
  await producer.connect();
  const sendErrors = { count: 0, first: '' };
  const send = (messages: Message[]) =>
    producer.send({ topic: input, acks: -1, messages }).then(
      () => undefined,
      (e: unknown) => {
        sendErrors.count += messages.length;
        sendErrors.first ||= (e as Error).message;
      },
    );

  /** Produces a whole phase at once (chunks of 500, at most 8 requests in flight). */
  async function backlog(phase: Phase): Promise<{ produce_seconds: number; t0: number }> {
    const messages = Array.from({ length: phase.n }, (_, i) => commandMessage(phase.name, i));
    const t0 = performance.now();
    const inflight = new Set<Promise<void>>();
    for (let i = 0; i < phase.n; i += 500) {
      const chunk = messages.slice(i, i + 500);
      const now = performance.now();
      for (let j = i; j < i + chunk.length; j++) phase.sentAt[j] = phase.scheduledAt[j] = now;
      const p = send(chunk).finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= 8) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    return { produce_seconds: (performance.now() - t0) / 1000, t0 };
  }

  // 1. Warm-up: every outcome topic, the worker's JIT and the consumers' assignments.
  say(`${target}: warm-up, ${WARMUP} commands on ${input}`);
  const warm = new Phase('w', WARMUP);
  phases.set('w', warm);
  const tw = performance.now();
  await backlog(warm);
  if (!(await warm.complete(Math.max(IDLE_MS, 90_000)))) throw new Error(`warm-up: only ${warm.received} of ${WARMUP} outcomes arrived (send errors: ${sendErrors.count} ${sendErrors.first})`);
  say(`${target}: warm-up done in ${round((performance.now() - tw) / 1000, 2)} s`);
  await sleep(1000);

  // 2. Throughput: a backlog of N, first produce to last outcome.
  say(`${target}: throughput, ${N} commands as fast as possible`);
  const thr = new Phase('t', N);
  phases.set('t', thr);
  const c0 = cpuMark();
  const { produce_seconds, t0 } = await backlog(thr);
  const thrComplete = await thr.complete(IDLE_MS);
  const c1 = cpuMark();
  const thrSeconds = ((thrComplete ? thr.lastAt : performance.now()) - t0) / 1000;
  const throughput = {
    commands: N,
    received: thr.received,
    duplicates: thr.duplicates,
    complete: thrComplete,
    produce_seconds: round(produce_seconds, 3),
    seconds: round(thrSeconds, 3),
    commands_per_sec: round(thr.received / thrSeconds),
    backlog_latency: percentiles(thr.latencies('sent')),
    cpu: cpuBetween(c0, c1),
  };
  say(`${target}: ${throughput.commands_per_sec} commands/s (${thr.received}/${N} in ${throughput.seconds} s; produced in ${throughput.produce_seconds} s)`);
  await sleep(1000);

  // 3. Steady rate: half the throughput, sent in small batches every TICK_MS, open loop.
  const rate = Math.max(1, Math.min(MAX_RATE, Math.round(throughput.commands_per_sec / 2)));
  const total = rate * STEADY_S;
  say(`${target}: steady rate ${rate}/s for ${STEADY_S} s (${total} commands, a batch every ${TICK_MS} ms)`);
  const st = new Phase('l', total);
  phases.set('l', st);
  const messages = Array.from({ length: total }, (_, i) => commandMessage('l', i));
  const pending = new Set<Promise<void>>();
  let maxInflightSends = 0;
  const c2 = cpuMark();
  const s0 = performance.now();
  let sent = 0;
  let ticks = 0;
  while (sent < total) {
    const now = performance.now();
    const due = Math.min(total, Math.floor(((now - s0) * rate) / 1000) + 1);
    if (due > sent) {
      for (let i = sent; i < due; i++) {
        st.sentAt[i] = now;
        st.scheduledAt[i] = s0 + (i * 1000) / rate;
      }
      const p = send(messages.slice(sent, due)).finally(() => pending.delete(p));
      pending.add(p);
      maxInflightSends = Math.max(maxInflightSends, pending.size);
      sent = due;
      ticks++;
    }
    await sleep(TICK_MS);
  }
  const sendSeconds = (performance.now() - s0) / 1000;
  await Promise.all(pending);
  const stComplete = await st.complete(IDLE_MS);
  const c3 = cpuMark();
  const steady = {
    target_rate: rate,
    commands: total,
    received: st.received,
    duplicates: st.duplicates,
    complete: stComplete,
    send_seconds: round(sendSeconds, 3),
    achieved_send_rate: round(total / sendSeconds),
    produce_batches: ticks,
    avg_batch: round(total / ticks),
    max_produce_requests_in_flight: maxInflightSends,
    latency: percentiles(st.latencies('sent')),
    latency_from_schedule: percentiles(st.latencies('scheduled')),
    cpu: cpuBetween(c2, c3),
  };
  say(`${target}: steady p50 ${steady.latency.p50_ms} ms, p99 ${steady.latency.p99_ms} ms, max ${steady.latency.max_ms} ms (${st.received}/${total})`);

  await producer.disconnect();
  await consumer.disconnect();

  // Transaction markers (one per partition a committed transaction touched) in the hub's topics.
  let markers: Record<string, unknown> | undefined;
  if (target === 'hub') {
    const commands = WARMUP + N + total;
    markers = await withAdmin(async (admin) => {
      const sum = async (topics: string[]) => {
        let n = 0;
        for (const t of topics) for (const p of await admin.fetchTopicOffsets(t)) n += Number(p.high) - Number(p.low);
        return n;
      };
      const stateOffsets = await sum([HUB_STATE]);
      const outcomeOffsets = await sum(HUB_OUTCOMES);
      return {
        commands,
        state_topic_offsets: stateOffsets,
        state_topic_markers: stateOffsets - commands,
        outcome_topics_offsets: outcomeOffsets,
        outcome_topics_markers: outcomeOffsets - commands,
        note: 'each command writes one state and one outcome record; the rest of the offsets are commit markers, one per partition per transaction',
      };
    }).catch((e: unknown) => ({ error: (e as Error).message }));
  }

  const report = {
    target,
    input_topic: input,
    output_topics: outputs.length === 1 ? outputs[0] : `${outputs.length} topics: ionflux.noop.ws_bench{0..15}.command.outcomes`,
    partitions: PARTITIONS,
    workspaces: WORKSPACES.length,
    warmup: { commands: WARMUP, received: warm.received },
    throughput,
    steady,
    unexpected_outcome_types: wrongType,
    send_errors: sendErrors,
    transaction_markers: markers,
    loadavg: { start: loadStart, end: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') },
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  if (!thrComplete || !stComplete || wrongType.count > 0 || sendErrors.count > 0) {
    say('some commands got no outcome, a wrong outcome, or could not be sent');
    process.exitCode = 1;
  }
}

const cmd = process.argv[2];
const main = cmd === 'prepare' ? prepare : cmd === 'cleanup' ? cleanup : cmd === 'run' ? run : null;
if (!main) {
  say('usage: drive.ts prepare|run|cleanup');
  process.exit(2);
}
main().then(
  () => process.exit(process.exitCode ?? 0),
  (e: unknown) => {
    say(`failed: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);

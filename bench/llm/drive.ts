/**
 * bench/llm: the latency the LLM orchestrator adds over calling the same OpenAI-API simulator
 * directly with the `openai` package, at 1 and at 50 concurrent requests, and requests/s.
 *
 *   direct: openai.chat.completions.create -> simulator (HTTP, keep-alive), with the SDK's
 *           default fetch; then again through the orchestrator's own transport
 *           (shared/net/lean-fetch.ts), printed on a line of its own
 *   hub:    HubClient.send (command on ionflux.cmd.llm, Kafka) -> orchestrator (decode, route, key,
 *           budget, the same openai call through the lean fetch, cost, usage event, outcome +
 *           state in one idempotent produce: text_generation is artifact_generation, see
 *           docs/commands.md) -> HubClient reads the outcome (read_committed) and resolves
 *   bare:   the floor (bench/llm/bare.ts): plain kafkajs, a JSON command in, the same openai call,
 *           a JSON outcome out with an idempotent producer; no transaction, schema, state or
 *           budget. What crossing Kafka twice costs on this machine with nothing of the hub's.
 *
 * Closed loop: C workers each send, wait, repeat. Percentiles are of each path's own latencies;
 * "added" is hub minus direct at the same percentile. The orchestrator's in-process overhead is
 * what its handler reports (`timing.overhead_ms`: time around the provider call, i.e. routing,
 * keys, budget, cost, response shaping), so it excludes Kafka and the worker's own bookkeeping.
 * Env: BENCH_N1 (400), BENCH_N50 (3000), BENCH_WORKSPACES (50), BENCH_WARM_PER_WORKSPACE (30), BENCH_ROUNDS (1), BENCH_CPU_PROF=1 (profile the orchestrator). Writes reports/bench-llm.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import OpenAI from 'openai';
import { createKafka } from '../../shared/bus/kafka/client.ts';
import { baseEnv, kafkaAuth, parseEnv } from '../../shared/config.ts';
import { createHubClient, type HubClient } from '../../shared/commands/client.ts';
import { createLogger } from '../../shared/logger.ts';
import { createLeanFetch } from '../../shared/net/lean-fetch.ts';
import { cpuSeconds } from '../cpu.ts';

const N1 = Number(process.env.BENCH_N1 ?? 400);
const N50 = Number(process.env.BENCH_N50 ?? 3000);
const WORKSPACES = Number(process.env.BENCH_WORKSPACES ?? 50);
/**
 * Warm-up commands per workspace, through the hub and through the floor; the direct path gets as
 * many calls. The orchestrator's path runs many more functions than the direct call, each
 * optimised by V8 only after many calls: with 3 per workspace (150) the hub's 1-in-flight phase
 * still measured some of that (added p99 16.5 ms in one run; 7.0-9.6 ms in four runs with 30).
 */
const WARM_PER_WS = Number(process.env.BENCH_WARM_PER_WORKSPACE ?? 30);
/**
 * BENCH_ROUNDS=N: the 1- and 50-in-flight phases of every path, N times in turn (runs on these
 * shared cores differ by a fifth or more); one line per round and the medians. Use an odd N.
 */
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1));
/** BENCH_CPU_PROF=1: a V8 CPU profile of the orchestrator in reports/bench-llm-prof/ (bench/commands/prof-summary.ts reads it). */
const PROF_DIR = process.env.BENCH_CPU_PROF === '1' ? join(process.cwd(), 'reports', 'bench-llm-prof') : undefined;
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const registryUrl = process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7';
const KEY = `sk-bench-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
const PROMPT = 'Summarize in one sentence: the order #1042 shipped late because the carrier missed the pickup window; the customer asked for a refund of the shipping fee.';
const log = (m: string) => process.stderr.write(`[bench-llm] ${m}\n`);
const SERVICE = 'llmbench';
const BENCH_TOPIC = /^ionflux\.(cmd\.llmbench|llmbench\..+|state\.(commands-llmbench|llmbench-spend))$/;
const BARE_IN = 'ionflux.llmbench.bare-in';
const BARE_OUT = 'ionflux.llmbench.bare-out';
const BARE_GROUP = 'bench-llm-bare';

/** Deletes the bench's topics and consumer group, so nothing of it stays in the user's broker. */
async function cleanupBroker(): Promise<void> {
  const admin = createKafka({ brokers, auth: kafkaAuth(parseEnv(baseEnv)), clientId: 'bench-llm-cleanup', logger: createLogger({ service: 'bench-llm', level: 'silent' }) }).admin();
  await admin.connect();
  try {
    const mine = (await admin.listTopics()).filter((t) => BENCH_TOPIC.test(t));
    if (mine.length) await admin.deleteTopics({ topics: mine });
    await admin.deleteGroups([`bench-llm-${SERVICE}-worker`, BARE_GROUP, `${BARE_GROUP}-client`]).catch(() => undefined);
    log(`deleted ${mine.length} bench topics and the bench consumer group`);
  } finally {
    await admin.disconnect();
  }
}
const children: ChildProcess[] = [];
// Never leave the simulator or an orchestrator (which would keep consuming ionflux.cmd.llm) behind.
const killAll = () => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGTERM'));
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Spawns a tsx process and resolves with its first stdout line matching `ready` (at once when null). */
function start(file: string, env: Record<string, string>, ready: RegExp | null, nodeArgs: string[] = []): Promise<{ child: ChildProcess; line: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let buf = '';
    const tail: string[] = [];
    const onData = (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split('\n').slice(0, -1)) {
        tail.push(line);
        if (ready?.test(line)) resolve({ child, line });
      }
      buf = buf.slice(buf.lastIndexOf('\n') + 1);
      tail.splice(0, Math.max(0, tail.length - 20));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => tail.push(d.toString()));
    child.once('exit', (code) => reject(new Error(`${file} exited ${code}:\n${tail.join('\n')}`)));
    if (!ready) resolve({ child, line: '' });
    setTimeout(() => reject(new Error(`${file} not ready in 120 s:\n${tail.join('\n')}`)), 120_000).unref();
  });
}

const q = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
};
const r2 = (x: number) => Math.round(x * 100) / 100;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

interface Phase {
  latencies: number[];
  overhead: number[];
  seconds: number;
  /** CPU seconds each watched process used during the phase (null: unreadable). */
  cpu: Record<string, number | null>;
}

/** Processes whose CPU each phase reports: the driver itself, and what `watch` adds (orchestrator, floor, simulator, broker). */
const watched = new Map<string, () => number | null>([['driver', () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; }]]);
const watch = (name: string, pid: number | undefined) => void watched.set(name, () => cpuSeconds(pid));
const cpuNow = () => new Map([...watched].map(([k, f]) => [k, f()]));

/** C workers in a closed loop until `n` requests completed. */
async function closedLoop(n: number, c: number, one: (worker: number) => Promise<number | undefined>): Promise<Phase> {
  const latencies: number[] = [];
  const overhead: number[] = [];
  let issued = 0;
  const cpu0 = cpuNow();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async (_, w) => {
      while (issued < n) {
        issued++;
        const s = performance.now();
        const o = await one(w);
        latencies.push(performance.now() - s);
        if (o !== undefined) overhead.push(o);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = cpuNow();
  return { latencies, overhead, seconds, cpu: Object.fromEntries([...cpu1].map(([k, v]) => [k, v === null || cpu0.get(k) == null ? null : v - cpu0.get(k)!])) };
}

/** The floor's client: commands to BARE_IN, outcomes matched by their `command_id` header on BARE_OUT. */
async function startBare(simUrl: string): Promise<{ send: (ws: string) => Promise<void>; close: () => Promise<void> }> {
  const kafka = createKafka({ brokers, auth: kafkaAuth(parseEnv(baseEnv)), clientId: 'bench-llm-bare-client', logger: createLogger({ service: 'bench-llm', level: 'warn' }) });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [BARE_IN, BARE_OUT].map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })), waitForLeaders: true });
  await admin.disconnect();
  const floor = await start('bench/llm/bare.ts', { OPENAI_BASE_URL: simUrl, OPENAI_API_KEY: KEY, BARE_IN, BARE_OUT, BARE_GROUP }, /^ready$/);
  watch('floor', floor.child.pid);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const consumer = kafka.consumer({ groupId: `${BARE_GROUP}-client`, maxWaitTimeInMs: 1000 });
  const waiting = new Map<string, () => void>();
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic: BARE_OUT, fromBeginning: true });
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  await consumer.run({
    autoCommit: false, // it reads from the beginning of its own fresh topic; nothing to resume
    eachMessage: async ({ message }) => {
      const id = message.headers?.command_id?.toString();
      if (id) waiting.get(id)?.();
    },
  });
  await joined;
  let n = 0;
  return {
    async send(ws) {
      const command_id = `bare-${process.pid}-${n++}`;
      let timer: NodeJS.Timeout | undefined;
      const done = new Promise<void>((resolve, reject) => {
        waiting.set(command_id, resolve);
        timer = setTimeout(() => reject(new Error(`the floor gave no outcome for ${command_id} within 60 s`)), 60_000);
      });
      try {
        await producer.send({ topic: BARE_IN, acks: -1, messages: [{ key: ws, value: JSON.stringify({ command_id, workspace_id: ws, params: { model: 'gpt-4o-mini', prompt: PROMPT, max_tokens: 64 } }) }] });
        await done;
      } finally {
        clearTimeout(timer);
        waiting.delete(command_id);
      }
    },
    close: () => Promise.all([consumer.disconnect(), producer.disconnect()]).then(() => undefined),
  };
}

/** CPU ms per request of each watched process in a phase (null: unreadable). */
function cpuPerRequest(p: Phase): Record<string, number | null> {
  return Object.fromEntries(Object.entries(p.cpu).map(([k, v]) => [k, v === null ? null : r2((1000 * v) / p.latencies.length)]));
}

/**
 * The CPU each path costs per request at 50 in flight, by process: on 2 shared cores a path's
 * rate is bounded by what all its processes use together, so this says whose work to cut.
 */
function cpuLines(rows: { label: string; direct?: Phase; hub: Phase; bare?: Phase }[]): string[] {
  const row = rows.find((r) => r.label.startsWith('50 concurrent') && r.bare);
  if (!row) return [];
  const paths = [['direct', row.direct, ['driver', 'simulator']], ['hub', row.hub, ['orchestrator', 'driver', 'simulator', 'broker']], ['floor', row.bare, ['floor', 'driver', 'simulator', 'broker']]] as const;
  const out = [`CPU ms per request at ${row.label} (user+system, all threads; driver = the client side: openai, HubClient or the floor's kafkajs client):`];
  for (const [name, phase, procs] of paths) {
    if (!phase) continue;
    const per = cpuPerRequest(phase);
    const known = procs.map((k) => per[k]).filter((v): v is number => v !== null && v !== undefined);
    out.push(`  ${name.padEnd(7)}${procs.map((k) => `${k} ${per[k] ?? 'n/a'}`).join(', ')}; total ${r2(known.reduce((a, b) => a + b, 0))}`);
  }
  return out;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'bench-llm-'));
  try {
    const sim = await start('bench/llm/sim.ts', { SIM_KEYS: KEY }, /"url"/);
    const simUrl = (JSON.parse(sim.line) as { url: string }).url;
    watch('simulator', sim.child.pid);
    watch('broker', Number(process.env.BENCH_BROKER_PID ?? 0) || undefined);
    const opsPort = await freePort();
    log(`simulator at ${simUrl}; starting the orchestrator (ops :${opsPort})`);
    const orchestrator = await start(
      'services/llm-orchestrator/main.ts',
      {
        OPENAI_BASE_URL: simUrl,
        OPENAI_API_KEY: KEY,
        LOG_LEVEL: 'warn',
        LLM_OPS_PORT: String(opsPort),
        LLM_INSTANCE_ID: `bench${process.pid}`,
        LLM_ARTIFACTS_DIR: join(work, 'artifacts'),
        // Its table stores too: removed with the rest of the run's folder.
        IONFLUX_STATE_DIR: join(work, 'state'),
        // Its own command topic, outcome topics, state and consumer group: a running hub neither
        // consumes the bench's commands nor shares its group; all are deleted at the end.
        LLM_SERVICE: SERVICE,
        COMMAND_GROUP_PREFIX: 'bench-llm',
        // The per-workspace rate limit would otherwise be what we measure.
        LLM_RATE_PER_SECOND: '1000000',
        LLM_RATE_BURST: '1000000',
      },
      null,
      [...(process.env.BENCH_SERVICE_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean), ...(PROF_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROF_DIR] : [])],
    );
    watch('orchestrator', orchestrator.child.pid);
    // Readiness (the worker has joined its group) before the first command.
    for (let i = 0; !(await fetch(`http://127.0.0.1:${opsPort}/readyz`).then((r) => r.ok, () => false)); i++) {
      if (i > 600 || orchestrator.child.exitCode !== null) throw new Error('the orchestrator did not become ready');
      await new Promise((r) => setTimeout(r, 200));
    }

    const openai = new OpenAI({ apiKey: KEY, baseURL: simUrl, maxRetries: 0 });
    const direct = async () => {
      await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }], max_tokens: 64 });
      return undefined;
    };
    // The same call through the transport the orchestrator's clients use: how much of the hub's
    // rate is its leaner HTTP client rather than anything else.
    const leanOpenai = new OpenAI({ apiKey: KEY, baseURL: simUrl, maxRetries: 0, fetch: createLeanFetch() });
    const directLean = async () => {
      await leanOpenai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }], max_tokens: 64 });
      return undefined;
    };
    const client: HubClient = await createHubClient({ brokers, registryUrl, clientId: 'bench-llm' });
    const ws = (i: number) => `llmbench${i}`;
    // At 1 in flight: where a command's time goes, from the outcome's own stamps (the worker's
    // clock stamps the outcome event in whole ms, so these are means, not percentiles).
    const splits: { toBuilt: number; handler: number; provider: number; back: number }[] = [];
    let splitting = false;
    const epochNow = () => performance.timeOrigin + performance.now();
    const viaHub = (w: number) => async () => {
      const sent = epochNow();
      const out = await client.send({ workspace_id: ws(w), agent_id: 'bench', service: SERVICE, action: 'text_generation', params: { model: 'gpt-4o-mini', prompt: PROMPT, max_tokens: 64 } }, { timeoutMs: 60_000 });
      if (out.status !== 'succeeded') throw new Error(`command failed: ${JSON.stringify(out.error)}`);
      const timing = (out.result as { timing: { overhead_ms: number; provider_ms: number } }).timing;
      if (splitting) splits.push({ toBuilt: out.event.timestamp - sent, handler: timing.provider_ms + timing.overhead_ms, provider: timing.provider_ms, back: epochNow() - out.event.timestamp });
      return timing.overhead_ms;
    };

    const bare = await startBare(simUrl);
    const viaBare = (w: number) => async () => {
      await bare.send(ws(w));
      return undefined;
    };

    log(`warm-up: ${WARM_PER_WS * WORKSPACES} direct calls per transport, ${WARM_PER_WS} commands in each of ${WORKSPACES} workspaces (topics, consumers, key cache, JIT), the same through the floor`);
    await closedLoop(WARM_PER_WS * WORKSPACES, 10, direct);
    await closedLoop(WARM_PER_WS * WORKSPACES, 10, directLean);
    await Promise.all(Array.from({ length: WORKSPACES }, async (_, w) => { for (let i = 0; i < WARM_PER_WS; i++) await viaHub(w)(); }));
    await Promise.all(Array.from({ length: WORKSPACES }, async (_, w) => { for (let i = 0; i < WARM_PER_WS; i++) await viaBare(w)(); }));

    type Row = { label: string; concurrency: number; direct?: Phase; hub: Phase; bare?: Phase };
    const rounds: { rows: Row[]; l1: Phase; l50: Phase }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const rows: Row[] = [];
      const of = ROUNDS > 1 ? ` (round ${round} of ${ROUNDS})` : '';
      log(`c=1${of}: ${N1} direct (the SDK's fetch, then the lean one), then ${N1} through the hub, then ${N1} through the floor`);
      const d1 = await closedLoop(N1, 1, direct);
      const l1 = await closedLoop(N1, 1, directLean);
      splitting = true;
      const h1 = await closedLoop(N1, 1, () => viaHub(0)());
      splitting = false;
      rows.push({ label: '1 concurrent', concurrency: 1, direct: d1, hub: h1, bare: await closedLoop(N1, 1, () => viaBare(0)()) });
      log(`c=50${of}: ${N50} direct (both transports), then ${N50} through the hub (${WORKSPACES} workspaces, one in flight each), then through the floor`);
      const d50 = await closedLoop(N50, 50, direct);
      const l50 = await closedLoop(N50, 50, directLean);
      const h50 = await closedLoop(N50, 50, (w) => viaHub(w % WORKSPACES)());
      rows.push({ label: `50 concurrent, ${WORKSPACES} workspaces`, concurrency: 50, direct: d50, hub: h50, bare: await closedLoop(N50, 50, (w) => viaBare(w % WORKSPACES)()) });
      rounds.push({ rows, l1, l50 });
    }
    const rps = (p: Phase) => Math.round(p.latencies.length / p.seconds);
    // The aims' figures per round; the table below shows the round whose hub/direct at 50 in flight is the median.
    const aims = rounds.map(({ rows: [c1, c50], l50 }) => ({
      added_p50_ms: r2(q(c1!.hub.latencies, 0.5) - q(c1!.direct!.latencies, 0.5)),
      added_p99_ms: r2(q(c1!.hub.latencies, 0.99) - q(c1!.direct!.latencies, 0.99)),
      hub_direct: r2(rps(c50!.hub) / rps(c50!.direct!)),
      hub_floor: r2(rps(c50!.hub) / rps(c50!.bare!)),
      hub_direct_lean: r2(rps(c50!.hub) / rps(l50)),
    }));
    const order = aims.map((a, i) => [a.hub_direct, i] as const).sort((a, b) => a[0] - b[0]);
    const chosen = order[Math.floor((order.length - 1) / 2)]![1];
    const { rows, l1, l50 } = rounds[chosen]!;
    const d50 = rows[1]!.direct!;
    const nOne = Math.min(N50, 600);
    log(`c=50 in one workspace: ${nOne} through the hub (commands of one workspace run in order)`);
    rows.push({ label: '50 concurrent, 1 workspace', concurrency: 50, direct: d50, hub: await closedLoop(nOne, 50, () => viaHub(1)()) });
    await client.close();
    await bare.close();

    const table = rows.map((r) => {
      const dp50 = q(r.direct!.latencies, 0.5);
      const dp99 = q(r.direct!.latencies, 0.99);
      const hp50 = q(r.hub.latencies, 0.5);
      const hp99 = q(r.hub.latencies, 0.99);
      return {
        run: r.label,
        direct_p50_ms: r2(dp50),
        direct_p99_ms: r2(dp99),
        hub_p50_ms: r2(hp50),
        hub_p99_ms: r2(hp99),
        added_p50_ms: r2(hp50 - dp50),
        added_p99_ms: r2(hp99 - dp99),
        direct_rps: rps(r.direct!),
        hub_rps: rps(r.hub),
        ...(r.bare ? { floor_p50_ms: r2(q(r.bare.latencies, 0.5)), floor_p99_ms: r2(q(r.bare.latencies, 0.99)), floor_rps: rps(r.bare) } : {}),
        in_process_overhead_p50_ms: r2(q(r.hub.overhead, 0.5)),
        in_process_overhead_p99_ms: r2(q(r.hub.overhead, 0.99)),
        requests: r.hub.latencies.length,
      };
    });
    const pad = (v: unknown, w: number) => String(v).padStart(w);
    const lines = [
      '',
      `text_generation (gpt-4o-mini, ~150-char prompt, 64 max tokens) against the local OpenAI-API simulator; 2 cores shared by driver, simulator, orchestrator, Kafka and the registry`,
      `${'run'.padEnd(30)}${pad('direct p50', 11)}${pad('p99', 8)}${pad('hub p50', 9)}${pad('p99', 8)}${pad('added p50', 11)}${pad('p99', 8)}${pad('direct rps', 11)}${pad('hub rps', 9)}${pad('handler ovh p50', 17)}${pad('p99', 7)}`,
      ...table.map((t) => `${t.run.padEnd(30)}${pad(t.direct_p50_ms, 11)}${pad(t.direct_p99_ms, 8)}${pad(t.hub_p50_ms, 9)}${pad(t.hub_p99_ms, 8)}${pad(t.added_p50_ms, 11)}${pad(t.added_p99_ms, 8)}${pad(t.direct_rps, 11)}${pad(t.hub_rps, 9)}${pad(t.in_process_overhead_p50_ms, 17)}${pad(t.in_process_overhead_p99_ms, 7)}`),
      `ms unless noted. added = hub - direct at the same percentile. The hub path crosses Kafka twice (command in; outcome out, for text_generation one idempotent produce, read with read_committed).`,
      ...(splits.length ? [`hub at 1 in flight, mean ms (${splits.length} commands): send -> worker -> outcome built, outside the handler ${r2(mean(splits.map((x) => x.toBuilt - x.handler)))}; handler ${r2(mean(splits.map((x) => x.handler)))} (provider call ${r2(mean(splits.map((x) => x.provider)))}); outcome built -> client has it ${r2(mean(splits.map((x) => x.back)))}`] : []),
      '',
      `The floor (bench/llm/bare.ts: plain kafkajs, JSON in, the same openai call, JSON out, idempotent producer, nothing else), same run:`,
      `${'run'.padEnd(30)}${pad('floor p50', 11)}${pad('p99', 8)}${pad('floor rps', 11)}${pad('floor/direct', 14)}${pad('hub/floor', 11)}${pad('hub/direct', 12)}`,
      ...table.filter((t) => t.floor_rps !== undefined).map((t) => `${t.run.padEnd(30)}${pad(t.floor_p50_ms, 11)}${pad(t.floor_p99_ms, 8)}${pad(t.floor_rps, 11)}${pad(r2(t.floor_rps! / t.direct_rps), 14)}${pad(r2(t.hub_rps / t.floor_rps!), 11)}${pad(r2(t.hub_rps / t.direct_rps), 12)}`),
      `direct through the orchestrator's transport (the same openai package with shared/net/lean-fetch.ts): 1 in flight p50 ${r2(q(l1.latencies, 0.5))} / p99 ${r2(q(l1.latencies, 0.99))} ms; 50 in flight ${rps(l50)} rps (hub / this: ${r2(table[1]!.hub_rps / rps(l50))})`,
      ...cpuLines(rows),
      `handler ovh = the orchestrator's own work around the provider call (routing, key lookup, budget check, cost, response shaping), reported by each outcome's timing.overhead_ms.`,
      `Yardstick: LiteLLM publishes 2-12 ms p50 added latency for its HTTP proxy; the hub's aim is added p50 < 5 ms and p99 < 15 ms at 1 in flight, and at least 0.8x the direct rate at 50 in flight.`,
      ...(ROUNDS > 1
        ? [
            `${ROUNDS} rounds (the table above is round ${chosen + 1}, the median by hub/direct at 50 in flight):`,
            ...aims.map((a, i) => `  round ${i + 1}: added at 1 in flight p50 ${a.added_p50_ms} / p99 ${a.added_p99_ms} ms; at 50 in flight hub/direct ${a.hub_direct}, hub/floor ${a.hub_floor}, hub/direct-lean ${a.hub_direct_lean}`),
            `  median: added p50 ${q(aims.map((a) => a.added_p50_ms), 0.5)} / p99 ${q(aims.map((a) => a.added_p99_ms), 0.5)} ms; hub/direct ${q(aims.map((a) => a.hub_direct), 0.5)}, hub/floor ${q(aims.map((a) => a.hub_floor), 0.5)}, hub/direct-lean ${q(aims.map((a) => a.hub_direct_lean), 0.5)}`,
          ]
        : []),
      '',
    ];
    console.log(lines.join('\n'));
    mkdirSync('reports', { recursive: true });
    const cpu = rows.flatMap((r) => (['direct', 'hub', 'bare'] as const).flatMap((path) => (r[path] ? [{ run: r.label, path: path === 'bare' ? 'floor' : path, ms_per_request: cpuPerRequest(r[path]!) }] : [])));
    writeFileSync('reports/bench-llm.json', `${JSON.stringify({ at: new Date().toISOString(), rows: table, cpu, direct_lean_fetch: { c1_p50_ms: r2(q(l1.latencies, 0.5)), c1_p99_ms: r2(q(l1.latencies, 0.99)), c50_rps: rps(l50) }, rounds: aims, table_round: chosen + 1 }, null, 2)}\n`);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    rmSync(work, { recursive: true, force: true });
    await cleanupBroker().catch((e: unknown) => log(`cleanup failed: ${(e as Error).message}`));
  }
}

await main();

/**
 * What encoding one produce request costs the command worker's producer, kafkajs's code only (no
 * broker): a batch of 200 commands' records, as the worker sends them in one transactional
 * request (an outcome per command: 4 headers, keyed by its workspace, to the workspace's outcome
 * topic; a state record per command to the state topic's 3 partitions), encoded and framed
 * (protocol/requests/produce/v3 `encode`, then protocol/request.js) by
 *   kafkajs 2.2.4    the published files (shared/bus/kafka/fixtures/kafkajs-2.2.4)
 *   old              another kafkajs tree, when ENCODE_OLD_KAFKAJS names one (e.g. a checkout's
 *                    node_modules/kafkajs before patches/kafkajs+2.2.4.patch's one-pass encoder)
 *   patched          node_modules/kafkajs (patches/kafkajs+2.2.4.patch applied)
 * side by side in the same run, after checking they write the same bytes. Per record: ns (the
 * median of 5 rounds), bytes allocated (JS heap and ArrayBuffers, in a window without GC: young
 * generation made large for that run; "at least" when one ran anyway; the request's own bytes,
 * written once or more, are part of it) and GC time (in the timed rounds, Node's default heap).
 *
 *   node --import tsx bench/producer/encode.ts
 * Env: ENCODE_COMMANDS (200), ENCODE_OUTCOME_BYTES (600), ENCODE_STATE_BYTES (600),
 * ENCODE_ITERATIONS (requests per timed round, 400), ENCODE_OLD_KAFKAJS.
 * It runs itself in child processes (node flags: --expose-gc, and the young generation's size).
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { PerformanceObserver, performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const SELF = fileURLToPath(import.meta.url);
const COMMANDS = intEnv('ENCODE_COMMANDS', 200);
const OUTCOME_BYTES = intEnv('ENCODE_OUTCOME_BYTES', 600);
const STATE_BYTES = intEnv('ENCODE_STATE_BYTES', 600);
const ITERATIONS = intEnv('ENCODE_ITERATIONS', 400);
const WORKSPACES = 7;

function intEnv(name: string, fallback: number): number {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return v;
}

interface Encoder { buffer: Buffer }
type ProduceV3 = (args: Record<string, unknown>) => { apiKey: number; apiVersion: number; encode(): Promise<Encoder> };
type CreateRequest = (a: { correlationId: number; clientId: string; request: ReturnType<ProduceV3> }) => Promise<Encoder>;
interface Variant { name: string; encode: () => Promise<Buffer> }

function variants(): Variant[] {
  const trees: [string, string][] = [['kafkajs 2.2.4', require.resolve('../../shared/bus/kafka/fixtures/kafkajs-2.2.4/package.json')]];
  if (process.env.ENCODE_OLD_KAFKAJS) trees.push(['old', `${process.env.ENCODE_OLD_KAFKAJS}/package.json`]);
  trees.push(['patched', require.resolve('kafkajs/package.json')]);
  const Long = require('kafkajs/src/utils/long.js') as { fromValue(v: unknown): unknown };
  const args = request(Long);
  return trees.map(([name, pkg]) => {
    const root = pkg.replace(/package\.json$/, '');
    const v3 = require(`${root}src/protocol/requests/produce/v3/request.js`) as ProduceV3;
    const createRequest = require(`${root}src/protocol/request.js`) as CreateRequest;
    let correlationId = 0;
    return { name, encode: async () => (await createRequest({ correlationId: correlationId++ & 0x7fffffff, clientId: 'ionflux-worker-commands', request: v3(args) })).buffer };
  });
}

/** The worker's request for COMMANDS commands: outcomes (4 headers) per workspace topic, state records on 3 partitions. */
function request(Long: { fromValue(v: unknown): unknown }) {
  const outcomes = Array.from({ length: COMMANDS }, (_, i) => {
    const ws = `ws_${String(i % WORKSPACES).padStart(4, '0')}`;
    const id = `0195f3a2-7c1e-7d3b-9a4f-${String(i).padStart(12, '0')}`;
    return { key: ws, value: Buffer.alloc(OUTCOME_BYTES, i), headers: { 'ionflux.event_id': `${id}:outcome`, 'ionflux.event_type': 'noop.command.succeeded', 'ionflux.workspace_id': ws, command_id: id } };
  });
  const states = outcomes.map((o) => ({ key: `${o.key}:${o.headers.command_id}`, value: Buffer.alloc(STATE_BYTES, 7) }));
  return {
    acks: -1,
    timeout: 30_000,
    transactionalId: 'ionflux-worker-commands-0',
    producerId: Long.fromValue(4711n),
    producerEpoch: 3,
    topicData: [
      ...Array.from({ length: WORKSPACES }, (_, w) => ({
        topic: `ionflux.ws_${String(w).padStart(4, '0')}.commands.outcomes`,
        partitions: [{ partition: w % 3, firstSequence: 1000 * w, messages: outcomes.filter((_, i) => i % WORKSPACES === w) }],
      })),
      { topic: 'ionflux.commands.state', partitions: [0, 1, 2].map((p) => ({ partition: p, firstSequence: 500 + p, messages: states.filter((_, i) => i % 3 === p) })) },
    ],
  };
}
const RECORDS = COMMANDS * 2;

// --- children --------------------------------------------------------------------------------

const gcEntries: { startTime: number; duration: number }[] = [];
new PerformanceObserver((list) => gcEntries.push(...list.getEntries())).observe({ entryTypes: ['gc'] });
const settle = () => new Promise((r) => setImmediate(r));
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function timeChild(): Promise<void> {
  const out: Record<string, { nsPerRecord: number; gcMsPerRequest: number; gcPercent: number }> = {};
  const vs = variants();
  // Same bytes (Date.now fixed: records without a timestamp take it).
  const now = Date.now;
  Date.now = () => 1_764_000_000_000;
  const frames = await Promise.all(vs.map((v) => v.encode()));
  Date.now = now;
  for (const f of frames) if (!f.equals(frames[0]!)) throw new Error('the variants write different bytes');
  for (const v of vs) for (let i = 0; i < 100; i++) await v.encode(); // warm-up
  // Rounds interleave the variants (the machine's load drifts); a GC is counted in the window it
  // started in (the observer hears of it later).
  const windows: { name: string; t0: number; t1: number }[] = [];
  for (let round = 0; round < 5; round++) {
    for (const v of vs) {
      await pause(20);
      const t0 = performance.now();
      for (let i = 0; i < ITERATIONS; i++) await v.encode();
      windows.push({ name: v.name, t0, t1: performance.now() });
    }
  }
  await pause(200);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const v of vs) {
    const mine = windows.filter((w) => w.name === v.name);
    const ms = mine.reduce((s, w) => s + (w.t1 - w.t0), 0);
    const gc = gcEntries.filter((e) => mine.some((w) => e.startTime >= w.t0 && e.startTime < w.t1)).reduce((s, e) => s + e.duration, 0);
    out[v.name] = { nsPerRecord: median(mine.map((w) => ((w.t1 - w.t0) * 1e6) / (ITERATIONS * RECORDS))), gcMsPerRequest: gc / (mine.length * ITERATIONS), gcPercent: (100 * gc) / ms };
  }
  process.stdout.write(JSON.stringify({ bytes: frames[0]!.length, out }));
}

async function allocChild(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc!;
  const out: Record<string, { bytesPerRecord: number; noGc: boolean }> = {};
  const vs = variants();
  for (const v of vs) for (let i = 0; i < 50; i++) await v.encode(); // warm-up (optimized code allocates less)
  const k = 4; // requests: V8 caps the young generation, so the window stays small
  for (const v of vs) {
    gc();
    await settle();
    gc();
    const m0 = process.memoryUsage();
    const t0 = performance.now();
    const keep: Buffer[] = [];
    for (let i = 0; i < k; i++) keep.push(await v.encode());
    const m1 = process.memoryUsage();
    const t1 = performance.now();
    await pause(100);
    const heap = m1.heapUsed - m0.heapUsed;
    const external = m1.arrayBuffers - m0.arrayBuffers;
    out[v.name] = { bytesPerRecord: (heap + external) / (k * RECORDS), noGc: !gcEntries.some((e) => e.startTime >= t0 && e.startTime < t1) };
    keep.length = 0;
  }
  process.stdout.write(JSON.stringify(out));
}

// --- parent -----------------------------------------------------------------------------------

function child(mode: string, nodeFlags: string[]): string {
  const r = spawnSync(process.execPath, [...nodeFlags, '--import', 'tsx', SELF, mode], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${mode} child failed (${r.status})`);
  return r.stdout;
}

const mode = process.argv[2];
if (mode === '--time') await timeChild();
else if (mode === '--alloc') await allocChild();
else {
  process.stderr.write(`[encode] ${COMMANDS} commands: ${RECORDS} records (outcomes of ${OUTCOME_BYTES} B with 4 headers, states of ${STATE_BYTES} B), ${WORKSPACES + 1} topics, one transactional produce request\n`);
  const time = JSON.parse(child('--time', [])) as { bytes: number; out: Record<string, { nsPerRecord: number; gcMsPerRequest: number; gcPercent: number }> };
  // A large young generation (V8 caps it): the measured window (4 requests) allocates without a GC.
  const alloc = JSON.parse(child('--alloc', ['--expose-gc', '--min-semi-space-size=256', '--max-semi-space-size=256'])) as Record<string, { bytesPerRecord: number; noGc: boolean }>;
  const rows = Object.keys(time.out).map((name) => ({
    encoder: name,
    'ns/record': Math.round(time.out[name]!.nsPerRecord),
    'µs/request': Math.round((time.out[name]!.nsPerRecord * RECORDS) / 1000),
    'bytes allocated/record': `${Math.round(alloc[name]!.bytesPerRecord)}${alloc[name]!.noGc ? '' : ' (a GC ran: at least)'}`,
    'GC ms/request': Number(time.out[name]!.gcMsPerRequest.toFixed(3)),
    'GC % of time': Number(time.out[name]!.gcPercent.toFixed(1)),
  }));
  process.stderr.write(`[encode] request frame: ${time.bytes} bytes (${Math.round(time.bytes / RECORDS)} a record); ${ITERATIONS} requests a round, 5 rounds\n`);
  console.table(rows);
}

/**
 * The hub's producer under load: PlatformEvents of ~1 KB (encoded), built with `buildEvent`
 * (zod-checked), Avro-encoded in the Confluent wire format and published through `KafkaBus`
 * (idempotent, acks=all) with many `publish()` calls outstanding.
 *
 * Three figures, each on its own fresh topic where Kafka is involved:
 *   end_to_end   buildEvent + publishEvent (encode + publish) per record, first send to last ack
 *   encode_only  buildEvent + codec.encode of N events, no Kafka (CPU cost of the envelope)
 *   pre_encoded  the same N encoded records handed to KafkaBus.publish, first send to last ack
 *
 * Progress goes to stderr; one JSON document goes to stdout (bench/producer/run.sh reads it).
 * Env: BENCH_RECORDS (200000), BENCH_INFLIGHT (8000), BENCH_RECORD_SIZE (1024),
 * BENCH_MAX_BATCH (KafkaBus's maxBatch; its default when unset), BENCH_RUN_ID (topic suffix),
 * KAFKA_BROKERS, SCHEMA_REGISTRY_URL.
 */
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { createKafkaBus } from '../../shared/bus/kafka/bus.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { OutgoingRecord } from '../../shared/bus/types.ts';
import { baseEnv, kafkaAuth, parseEnv } from '../../shared/config.ts';
import { createEventCodec, type EventCodec } from '../../shared/events/codec.ts';
import { PayloadSchemas, buildEvent, type PlatformEvent } from '../../shared/events/platform-event.ts';
import { EVENT_HEADERS, publishEvent } from '../../shared/events/publisher.ts';
import { createRegistry } from '../../shared/events/registry.ts';
import { createLogger } from '../../shared/logger.ts';

const N = intEnv('BENCH_RECORDS', 200_000);
const INFLIGHT = intEnv('BENCH_INFLIGHT', 8_000);
const TARGET_SIZE = intEnv('BENCH_RECORD_SIZE', 1024);
const MAX_BATCH = process.env.BENCH_MAX_BATCH ? intEnv('BENCH_MAX_BATCH', 1000) : undefined;
const RUN_ID = (process.env.BENCH_RUN_ID ?? String(Date.now())).toLowerCase().replace(/[^a-z0-9]/g, '');
const env = parseEnv(baseEnv);

function intEnv(name: string, fallback: number): number {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return v;
}

const say = (msg: string) => process.stderr.write(`[hub-producer] ${msg}\n`);

// An order-like payload; `note` is padded so the encoded envelope is about TARGET_SIZE bytes.
const payloadSchema = z.object({
  seq: z.number().int().nonnegative(),
  order_id: z.string(),
  customer_id: z.string(),
  total_price: z.string(),
  currency: z.string().length(3),
  line_items: z.array(z.object({ sku: z.string(), quantity: z.number().int().positive(), price: z.string() })),
  note: z.string(),
});
const schemas = new PayloadSchemas().register('bench.load.generated', payloadSchema);
const WORKSPACE = `b${RUN_ID}`.slice(0, 63);

function newEvent(seq: number, padding: string): PlatformEvent {
  return buildEvent(schemas, {
    eventType: 'bench.load.generated',
    workspaceId: WORKSPACE,
    source: 'bench-producer',
    idempotencyKey: `delivery-${seq}`,
    correlationId: `delivery-${seq}`,
    payload: {
      seq,
      order_id: String(820982911946154508n + BigInt(seq)),
      customer_id: `cust-${seq % 5000}`,
      total_price: ((seq % 100000) / 100).toFixed(2),
      currency: 'USD',
      line_items: [
        { sku: `SKU-${seq % 97}`, quantity: 1 + (seq % 3), price: '19.99' },
        { sku: `SKU-${seq % 89}`, quantity: 1, price: '5.00' },
      ],
      note: padding,
    },
  });
}

/** Keys spread records over the partitions the way entity-keyed events do (ProducerPerformance sends no key). */
const keyOf = (seq: number) => `order-${seq % 1000}`;

function recordOf(topic: string, event: PlatformEvent, value: Buffer, seq: number): OutgoingRecord {
  return {
    topic,
    key: keyOf(seq),
    value,
    headers: { [EVENT_HEADERS.eventId]: event.event_id, [EVENT_HEADERS.eventType]: event.event_type, [EVENT_HEADERS.workspace]: event.workspace_id },
  };
}

/** Picks the padding length that makes a typical event encode to TARGET_SIZE bytes. */
async function paddingFor(codec: EventCodec): Promise<string> {
  let len = 0;
  for (let i = 0; i < 3; i++) {
    const size = (await codec.encode(newEvent(Math.floor(N / 2), 'x'.repeat(len)))).length;
    len = Math.max(0, len + TARGET_SIZE - size);
  }
  return 'x'.repeat(len);
}

interface Run {
  records: number;
  failed: number;
  seconds: number;
  records_per_sec: number;
  mb_per_sec: number;
  avg_latency_ms: number;
  max_latency_ms: number;
}

/**
 * Calls `send(i)` for i in 0..n-1 keeping at most `window` unsettled, and times first send to
 * last settle. Latency is per record, from its send call to its ack.
 */
function pump(n: number, window: number, bytesPerRecord: number, send: (i: number) => Promise<unknown>): Promise<Run> {
  return new Promise((resolve) => {
    let next = 0;
    let settled = 0;
    let failed = 0;
    let firstError: unknown;
    let latencySum = 0;
    let latencyMax = 0;
    const t0 = performance.now();
    const launch = () => {
      while (next < n && next - settled < window) {
        const i = next++;
        const sentAt = performance.now();
        send(i).then(
          () => done(sentAt),
          (e: unknown) => {
            failed++;
            firstError ??= e;
            done(sentAt);
          },
        );
      }
    };
    const done = (sentAt: number) => {
      const now = performance.now();
      const lat = now - sentAt;
      latencySum += lat;
      if (lat > latencyMax) latencyMax = lat;
      settled++;
      if (settled === n) {
        const seconds = (now - t0) / 1000;
        if (firstError) say(`first failure: ${(firstError as Error).message}`);
        resolve({
          records: n - failed,
          failed,
          seconds: round(seconds, 3),
          records_per_sec: round((n - failed) / seconds, 1),
          mb_per_sec: round(((n - failed) * bytesPerRecord) / seconds / 1024 / 1024, 2),
          avg_latency_ms: round(latencySum / n, 1),
          max_latency_ms: round(latencyMax, 1),
        });
      } else launch();
    };
    launch();
  });
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

async function main(): Promise<void> {
  const logger = createLogger({ service: 'bench-producer', level: 'warn', destination: process.stderr });
  const bus = createKafkaBus({ brokers: env.KAFKA_BROKERS, auth: kafkaAuth(env), clientId: 'ionflux-bench', logger, maxBatch: MAX_BATCH });
  const codec = await createEventCodec(createRegistry(env.SCHEMA_REGISTRY_URL));
  const padding = await paddingFor(codec);
  const e2eTopic = topics.event('bench', WORKSPACE, 'load', 'e2e');
  const preTopic = topics.event('bench', WORKSPACE, 'load', 'preencoded');
  // Connection and topic creation happen before the clock starts (ProducerPerformance's topic
  // is created beforehand too).
  await bus.connect();
  await bus.ensureTopics([e2eTopic, preTopic]);

  // 1. encode_only: build + encode every event; keeps the buffers for pre_encoded.
  say(`encoding ${N} events (target ${TARGET_SIZE} B each)`);
  const events: PlatformEvent[] = new Array(N);
  const values: Buffer[] = new Array(N);
  let encodedBytes = 0;
  const te0 = performance.now();
  for (let i = 0; i < N; i++) {
    const event = newEvent(i, padding);
    const value = await codec.encode(event);
    events[i] = event;
    values[i] = value;
    encodedBytes += value.length;
  }
  const encodeSeconds = (performance.now() - te0) / 1000;
  const avgSize = encodedBytes / N;
  const sample = recordOf(preTopic, events[0]!, values[0]!, 0);
  const keyAndHeaderBytes =
    Buffer.byteLength(sample.key as string) + Object.entries(sample.headers!).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v as string), 0);

  // 2. pre_encoded: only KafkaBus.publish is on the clock.
  say(`pre_encoded: publishing ${N} records to ${preTopic}, ${INFLIGHT} in flight`);
  const pre = await pump(N, INFLIGHT, avgSize, (i) => bus.publish(recordOf(preTopic, events[i]!, values[i]!, i)));
  events.length = 0;
  values.length = 0;

  // 3. end_to_end: buildEvent + publishEvent (encode + publish) per record.
  say(`end_to_end: building, encoding and publishing ${N} events to ${e2eTopic}, ${INFLIGHT} in flight`);
  const e2e = await pump(N, INFLIGHT, avgSize, (i) => {
    const event = newEvent(i, padding);
    return publishEvent({ bus, codec }, e2eTopic, event, { key: keyOf(i) });
  });

  // Every acknowledged record is in the topic: sum of partition end offsets.
  const landed: Record<string, number> = {};
  for (const t of [preTopic, e2eTopic]) landed[t] = (await bus.offsets(t)).reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  await bus.close();

  const report = {
    records: N,
    inflight: INFLIGHT,
    max_batch: MAX_BATCH ?? 'KafkaBus default',
    avg_encoded_value_bytes: round(avgSize, 1),
    key_and_header_bytes_per_record: keyAndHeaderBytes,
    partitions: 3,
    acks: 'all',
    idempotent: true,
    topics: { end_to_end: e2eTopic, pre_encoded: preTopic },
    records_in_topics: landed,
    end_to_end: e2e,
    encode_only: {
      records: N,
      seconds: round(encodeSeconds, 3),
      records_per_sec: round(N / encodeSeconds, 1),
      us_per_record: round((encodeSeconds * 1e6) / N, 2),
    },
    pre_encoded: pre,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  const lost = Object.values(landed).some((n) => n !== N) || pre.failed + e2e.failed > 0;
  if (lost) {
    say('some records failed or are missing from the topics');
    process.exitCode = 1;
  }
}

main().catch((e: unknown) => {
  say(`failed: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});

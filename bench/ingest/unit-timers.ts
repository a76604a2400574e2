/**
 * What the publish timeout costs the edge per append: shared/bus/kafka/producer.ts arms one
 * setTimeout per published unit when the caller gives `timeoutMs` (the edge gives
 * INGESTER_PUBLISH_TIMEOUT_MS on every inbox append) and clears it when the request is answered.
 * Drives KafkaProducer.publishAtomic with and without `timeoutMs`, in turn, on a stand-in for
 * kafkajs's producer that answers every request at once (no broker: only the hub's side of a
 * publish is measured; this is a bench, not a test of kafkajs), `BENCH_IN_FLIGHT` units at a time
 * as an edge under load, and prints the CPU per unit of each (process.cpuUsage).
 *
 *   node --import tsx bench/ingest/unit-timers.ts     # BENCH_UNITS=200000 BENCH_IN_FLIGHT=32 BENCH_ROUNDS=7
 */
import { KafkaProducer, type ProducerOptions } from '../../shared/bus/kafka/producer.ts';
import type { TopicProvisioner } from '../../shared/bus/kafka/provision.ts';
import { createLogger } from '../../shared/logger.ts';

const num = (name: string, fallback: number) => Number(process.env[name] ?? fallback) || fallback;
const UNITS = num('BENCH_UNITS', 200_000);
const IN_FLIGHT = num('BENCH_IN_FLIGHT', 32);
const ROUNDS = num('BENCH_ROUNDS', 7);

let offset = 0;
const stub = {
  connect: async () => undefined,
  disconnect: async () => undefined,
  // Answered on a later turn, as a broker's answer comes: units published meanwhile queue up.
  sendBatch: async ({ topicMessages }: { topicMessages: { topic: string; messages: { partition?: number }[] }[] }) => {
    await new Promise((r) => setImmediate(r));
    return topicMessages.flatMap((t) => t.messages.map((m) => ({ topicName: t.topic, partition: m.partition ?? 0, errorCode: 0, baseOffset: String(offset++) })));
  },
};
// Typed through ProducerOptions: kafkajs is imported only behind the bus (kafka-boundary.unit.test.ts).
const kafka = { producer: () => stub } as unknown as ProducerOptions['kafka'];
const provisioner = { ensure: async () => undefined, partitionCount: () => 12 } as unknown as TopicProvisioner;
const producer = new KafkaProducer({ kafka, provisioner, logger: createLogger({ service: 'bench-unit-timers', level: 'warn' }) });
const value = Buffer.alloc(2048, 120);

async function drive(timeoutMs: number | undefined): Promise<number> {
  let left = UNITS;
  let n = 0;
  const before = process.cpuUsage();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (left-- > 0) {
        const key = `shopify:bench-shop.myshopify.com:orders:${n++}`;
        await producer.publishAtomic([{ topic: 'ionflux.inbox.bench', key, value, headers: { 'ionflux.inbox.route': 'shopify' } }], { timeoutMs, orderKey: key });
      }
    }),
  );
  const cpu = process.cpuUsage(before);
  return (cpu.user + cpu.system) / UNITS;
}

await drive(undefined);
await drive(4000);
const without: number[] = [];
const withTimer: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  without.push(await drive(undefined));
  withTimer.push(await drive(4000));
}
const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
const r = (x: number) => Math.round(x * 100) / 100;
process.stdout.write(`${JSON.stringify({ units: UNITS, in_flight: IN_FLIGHT, rounds: ROUNDS, us_per_unit_without_timeout: without.map(r), us_per_unit_with_timeout: withTimer.map(r), mean_without: r(mean(without)), mean_with: r(mean(withTimer)), with_higher_in: withTimer.filter((x, i) => x > without[i]!).length })}\n`);
await producer.close();

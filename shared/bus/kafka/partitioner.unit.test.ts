import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { Partitioners, type PartitionerArgs } from 'kafkajs';
import { describe, expect, it } from 'vitest';

// patches/kafkajs+2.2.4.patch computes kafkajs's murmur2 in 32-bit integer arithmetic instead of
// a BigInt-backed Long per step (3.7 us a key before, 0.13 after). A key must still land on the
// partition the Java client (and Kafka Streams, ksqlDB, Redpanda Connect...) choose for it.
const murmur2 = createRequire(import.meta.url)('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer | string) => number;

/** Java's Utils.murmur2, step by step in 64-bit BigInt truncated to Java's int: slow and plain. */
function reference(data: Buffer): number {
  const int = (x: bigint) => BigInt.asIntN(32, x);
  const ushr = (x: bigint, n: bigint) => BigInt.asUintN(32, x) >> n;
  const m = 0x5bd1e995n;
  let h = int(0x9747b28cn ^ BigInt(data.length));
  const length4 = Math.floor(data.length / 4);
  for (let i = 0; i < length4; i++) {
    let k = int(BigInt(data[i * 4]! | (data[i * 4 + 1]! << 8) | (data[i * 4 + 2]! << 16) | (data[i * 4 + 3]! << 24)));
    k = int(k * m);
    k = int(k ^ ushr(k, 24n));
    k = int(k * m);
    h = int(h * m);
    h = int(h ^ k);
  }
  const tail = data.length & ~3;
  const rest = data.length % 4;
  if (rest >= 3) h = int(h ^ BigInt(data[tail + 2]! << 16));
  if (rest >= 2) h = int(h ^ BigInt(data[tail + 1]! << 8));
  if (rest >= 1) h = int((h ^ BigInt(data[tail]!)) * m);
  h = int(h ^ ushr(h, 13n));
  h = int(h * m);
  return Number(int(h ^ ushr(h, 15n)));
}

describe("kafkajs's default partitioner (patched murmur2)", () => {
  it("gives the hashes of Kafka's own murmur2 test (clients UtilsTest.testMurmur2)", () => {
    const cases: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, hash] of cases) {
      expect(murmur2(key)).toBe(hash);
      expect(murmur2(Buffer.from(key))).toBe(hash);
    }
  });

  it('agrees with a plain transcription of the Java code on random keys of every length', () => {
    for (let i = 0; i < 5000; i++) {
      const key = randomBytes(i % 97);
      expect(murmur2(key)).toBe(reference(key));
    }
  });

  it('places a keyed record on toPositive(murmur2(key)) % partitions', () => {
    const partition = Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: 12 }, (_, id) => ({ partitionId: id, leader: 1, replicas: [1], isr: [1], partitionErrorCode: 0 }));
    for (const key of ['shopify:acme.myshopify.com:b54557e4-bdd9-4b37-8a5f-bf7d70bcd043', 'ws_acme', 'foobar']) {
      const args = { topic: 't', partitionMetadata, message: { key, value: null } } as PartitionerArgs;
      expect(partition(args)).toBe((reference(Buffer.from(key)) & 0x7fffffff) % 12);
    }
  });
});

import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { Partitioners, type PartitionerArgs } from 'kafkajs';
import { describe, expect, it } from 'vitest';

// What patches/kafkajs+2.2.4.patch changes in kafkajs must not change a byte on the wire or a
// partition chosen. It computes kafkajs's murmur2 in 32-bit integer arithmetic instead of
// a BigInt-backed Long per step (3.7 us a key before, 0.13 after). A key must still land on the
// partition the Java client (and Kafka Streams, ksqlDB, Redpanda Connect...) choose for it.
const require = createRequire(import.meta.url);
const murmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer | string) => number;

// It also writes varints in place (no array and Buffer per value) and steps varlongs in one BigInt
// instead of a Long per operation.
interface KafkaLong { value: bigint }
interface Encoder { writeVarInt(v: number): Encoder; writeUVarInt(v: number): Encoder; writeVarLong(v: number | string | KafkaLong): Encoder; buffer: Buffer }
const Encoder = require('kafkajs/src/protocol/encoder.js') as { new (): Encoder; sizeOfVarLong(v: number | KafkaLong): number };
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (b: Buffer) => { readVarInt(): number; readVarLong(): KafkaLong };
const Long = require('kafkajs/src/utils/long.js') as new (v: bigint) => KafkaLong;

/** Kafka's varint/varlong (ByteUtils.writeVarint/writeVarlong): zigzag, then 7 bits a byte, low first. */
function leb128(v: bigint, bits: 32 | 64): Buffer {
  let z = BigInt.asUintN(bits, (v << 1n) ^ (v >> BigInt(bits - 1)));
  const out: number[] = [];
  while (z > 0x7fn) {
    out.push(Number(z & 0x7fn) | 0x80);
    z >>= 7n;
  }
  out.push(Number(z));
  return Buffer.from(out);
}

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

describe("kafkajs's varint and varlong codec (patched)", () => {
  const randomLong = () => BigInt.asIntN(64, randomBytes(8).readBigUInt64LE() >> BigInt(Math.floor(Math.random() * 64)));

  it('writes the bytes of Kafka\'s ByteUtils for edge values', () => {
    expect(new Encoder().writeVarInt(0).buffer).toEqual(Buffer.from([0x00]));
    expect(new Encoder().writeVarInt(-1).buffer).toEqual(Buffer.from([0x01]));
    expect(new Encoder().writeVarInt(64).buffer).toEqual(Buffer.from([0x80, 0x01]));
    expect(new Encoder().writeVarInt(2 ** 31 - 1).buffer).toEqual(Buffer.from([0xfe, 0xff, 0xff, 0xff, 0x0f]));
    expect(new Encoder().writeVarInt(-(2 ** 31)).buffer).toEqual(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]));
    expect(new Encoder().writeVarLong(new Long(2n ** 63n - 1n)).buffer).toEqual(Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]));
    expect(new Encoder().writeVarLong(new Long(-(2n ** 63n))).buffer).toEqual(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]));
  });

  it('encodes random ints and longs as Kafka does, sizes them right and reads them back', () => {
    for (let i = 0; i < 5000; i++) {
      const int = randomBytes(4).readInt32LE() >> Math.floor(Math.random() * 32);
      expect(new Encoder().writeVarInt(int).buffer).toEqual(leb128(BigInt(int), 32));
      expect(new Decoder(leb128(BigInt(int), 32)).readVarInt()).toBe(int);
      const long = randomLong();
      const bytes = leb128(long, 64);
      const written = new Encoder().writeVarLong(new Long(long)).buffer;
      expect(written).toEqual(bytes);
      expect(Encoder.sizeOfVarLong(new Long(long))).toBe(bytes.length);
      expect(new Decoder(bytes).readVarLong().value).toBe(long);
      if (Number.isSafeInteger(Number(long))) {
        expect(new Encoder().writeVarLong(Number(long)).buffer).toEqual(bytes);
        expect(new Encoder().writeVarLong(String(long)).buffer).toEqual(bytes);
      }
    }
  });

  it('writes several values one after another in one encoder', () => {
    const e = new Encoder().writeVarInt(300).writeVarLong(new Long(-5n)).writeUVarInt(2 ** 32 - 1);
    expect(e.buffer).toEqual(Buffer.concat([leb128(300n, 32), leb128(-5n, 64), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])]));
  });
});

describe("kafkajs's grouping of a batch per partition (patched)", () => {
  const group = require('kafkajs/src/producer/groupMessagesPerPartition.js') as (a: { topic: string; partitionMetadata: unknown[]; messages: { key: string | null; value: string; partition?: number }[]; partitioner: (a: PartitionerArgs) => number }) => Record<string, { value: string }[]>;
  const partitionMetadata = Array.from({ length: 4 }, (_, id) => ({ partitionId: id, leader: id === 3 ? -1 : 1, replicas: [1], isr: [1], partitionErrorCode: 0 }));

  it("puts every message in its partition's list, in the batch's order", () => {
    const messages = Array.from({ length: 2000 }, (_, i) => ({ key: `k${i % 37}`, value: String(i) }));
    const grouped = group({ topic: 't', partitionMetadata, messages, partitioner: Partitioners.DefaultPartitioner() });
    const expected: Record<string, string[]> = {};
    for (const m of messages) (expected[(reference(Buffer.from(m.key)) & 0x7fffffff) % 4] ??= []).push(m.value);
    expect(Object.fromEntries(Object.entries(grouped).map(([p, ms]) => [p, ms.map((m) => m.value)]))).toEqual(expected);
  });

  it('keeps a chosen partition, and spreads keyless messages over the partitions that have a leader', () => {
    const partition = Partitioners.DefaultPartitioner();
    const args = (message: { key: string | null; partition?: number }) => ({ topic: 'u', partitionMetadata, message: { ...message, value: null } }) as PartitionerArgs;
    expect(partition(args({ key: 'x', partition: 3 }))).toBe(3);
    const keyless = new Set(Array.from({ length: 30 }, () => partition(args({ key: null }))));
    expect([...keyless].sort()).toEqual([0, 1, 2]);
  });

  it('returns nothing for a topic without metadata', () => {
    expect(group({ topic: 't', partitionMetadata: [], messages: [{ key: 'a', value: '1' }], partitioner: Partitioners.DefaultPartitioner() })).toEqual({});
  });
});

// The record batch's CRC32C, eight bytes a step (slicing-by-8) instead of one.
describe("kafkajs's record batch checksum (patched CRC32C)", () => {
  const crc32C = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (b: Buffer) => number;
  /** CRC32C (Castagnoli, reflected polynomial 0x82f63b78) a bit at a time: slow and plain. */
  function bitwise(data: Buffer): number {
    let crc = 0xffffffff;
    for (const byte of data) {
      crc ^= byte;
      for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    }
    return (crc ^ 0xffffffff) >>> 0;
  }

  it('gives the standard check values (RFC 3720 B.4 and the CRC catalogue)', () => {
    expect(crc32C(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32C(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32C(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32C(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32C(Buffer.alloc(0))).toBe(0);
  });

  it('agrees with a bitwise CRC32C on random buffers of every length up to 100 and a few large ones', () => {
    for (let n = 0; n <= 100; n++) {
      const b = randomBytes(n);
      expect(crc32C(b)).toBe(bitwise(b));
    }
    for (const n of [1021, 4096, 65_537]) {
      const b = randomBytes(n);
      expect(crc32C(b)).toBe(bitwise(b));
    }
  });
});

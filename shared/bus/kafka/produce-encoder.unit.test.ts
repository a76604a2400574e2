import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it, vi } from 'vitest';

// patches/kafkajs+2.2.4.patch writes an uncompressed produce request (v3 to v7: RecordBatch v2)
// in one pass into one buffer, and the request frame around it in one more, instead of kafkajs's
// encoder per record, per header and per level. Every byte must stay the same: each request here
// is encoded by the patched kafkajs and by kafkajs 2.2.4's own files (copied unmodified from its
// npm tarball into fixtures/kafkajs-2.2.4), and the two frames must be equal.
const require = createRequire(import.meta.url);

interface Encoder { buf: Buffer; size(): number; buffer: Buffer }
interface ProduceArgs {
  acks: number;
  timeout: number;
  compression?: number;
  transactionalId?: string | null;
  producerId?: unknown;
  producerEpoch?: number;
  topicData: unknown[];
}
interface ProduceRequest { apiKey: number; apiVersion: number; encode(): Promise<Encoder> }
type CreateRequest = (a: { correlationId: number; clientId: string | null; request: ProduceRequest }) => Promise<Encoder>;

const produce = require('kafkajs/src/protocol/requests/produce/index.js') as { protocol(a: { version: number }): (args: ProduceArgs) => { request: ProduceRequest } };
const createRequest = require('kafkajs/src/protocol/request.js') as CreateRequest;
const referenceV3 = require('./fixtures/kafkajs-2.2.4/src/protocol/requests/produce/v3/request.js') as (args: ProduceArgs) => ProduceRequest;
const referenceCreateRequest = require('./fixtures/kafkajs-2.2.4/src/protocol/request.js') as CreateRequest;
const Long = require('kafkajs/src/utils/long.js') as { fromValue(v: unknown): unknown };
const GZIP = 1;

// The patch is applied by npm ci (postinstall), and deploy/local/npm-install.sh (make test, make
// test-unit) reinstalls when a patch is newer than node_modules: an encoder without it fails here.
const APPLIED = readFileSync(require.resolve('kafkajs/src/protocol/requests/produce/v3/request.js'), 'utf8').includes('const encodeUncompressed');

// Date.now() is read once per partition (for records without a timestamp) by both: both see the
// same clock, one that moves between partitions.
let clock = 0;
afterEach(() => vi.restoreAllMocks());
function resetClock() {
  clock = 0;
  vi.spyOn(Date, 'now').mockImplementation(() => 1_764_000_000_000 + 37 * clock++);
}

function firstDifference(a: Buffer, b: Buffer): number {
  if (a.equals(b)) return -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

type Outcome = { bytes: Buffer; exactSize: boolean } | { error: string };

async function encodeWith(version: number, args: ProduceArgs, patched: boolean): Promise<Outcome> {
  resetClock();
  try {
    // Produce v4-v7 are v3's request with another apiVersion (kafkajs's produce/v4..v7/request.js).
    const request = patched ? produce.protocol({ version })(args).request : { ...referenceV3(args), apiVersion: version };
    const payload = patched ? await request.encode() : null;
    const frame = await (patched ? createRequest : referenceCreateRequest)({
      correlationId: 4242,
      clientId: 'ionflux-worker',
      request: payload ? { ...request, encode: async () => payload } : request,
    });
    return { bytes: frame.buffer, exactSize: payload !== null && payload.buf.length === payload.size() };
  } catch (e) {
    return { error: `${(e as Error).name}: ${(e as Error).message}` };
  } finally {
    vi.restoreAllMocks();
  }
}

/** Encodes with both and expects the same frame, byte for byte (or the same error). */
async function expectSameBytes(args: ProduceArgs, { onePass = true, versions = [3, 4, 5, 6, 7] } = {}) {
  for (const version of versions) {
    const ours = await encodeWith(version, args, true);
    const theirs = await encodeWith(version, args, false);
    if ('error' in theirs || 'error' in ours) {
      expect(ours).toEqual(theirs);
      continue;
    }
    const at = firstDifference(ours.bytes, theirs.bytes);
    expect(at, `v${version}: first differing byte at ${at} of ${theirs.bytes.length}`).toBe(-1);
    expect(ours.bytes.length).toBe(theirs.bytes.length);
    // The patched encoder's one-pass path hands out a buffer of exactly the request's size; the
    // code it falls back to (compressed batches, inputs it does not take) does not.
    expect(ours.exactSize, `v${version}: encoded in one pass`).toBe(onePass);
  }
}

// A small deterministic PRNG (mulberry32), so a failure is reproducible.
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const UNICODE = ['é', 'ß', 'ключ', '中文', '🔑', '\u{10FFFF}', '\uD800', 'a\u0000b', '\u0080', '\u07ff', '\u0800'];

function generator(seed: number) {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  // Strings and bytes are cut from pools made once (making each from scratch was most of the time).
  const asciiPool = Array.from({ length: 8192 }, () => String.fromCharCode(32 + int(95))).join('');
  const bytePool = Buffer.from(Array.from({ length: 1 << 17 }, () => int(256)));
  const ascii = (n: number) => {
    const at = int(asciiPool.length - n);
    return asciiPool.slice(at, at + n);
  };
  const text = (n: number) => Array.from({ length: n }, () => (r() < 0.2 ? pick(UNICODE) : ascii(1 + int(8)))).join('');
  const bytes = (n: number) => {
    const at = int(bytePool.length - n);
    return bytePool.subarray(at, at + n);
  };
  const key = () => pick([() => null, () => undefined, () => '', () => ascii(1 + int(40)), () => ascii(65 + int(400)), () => text(1 + int(30)), () => bytes(int(40)), () => Buffer.alloc(0)])();
  const value = () =>
    pick([() => null, () => '', () => ascii(int(700)), () => text(int(300)), () => bytes(int(2000)), () => bytes(5000 + int(60_000)), () => Buffer.alloc(0), () => ascii(64), () => ascii(65)])();
  const headerValue = () => pick([() => '', () => ascii(int(80)), () => text(1 + int(20)), () => bytes(int(50))])();
  const headers = () =>
    pick([
      () => undefined,
      () => ({}),
      () => ({ 'ionflux.event_id': `cmd-${int(1e9)}:outcome`, 'ionflux.event_type': 'noop.command.succeeded', 'ionflux.workspace_id': `ws_${int(1000)}`, command_id: `cmd-${int(1e9)}` }),
      () => Object.fromEntries(Array.from({ length: 1 + int(40) }, (_, i) => [`h${i}-${ascii(int(10))}`, headerValue()])),
      () => ({ [text(1 + int(5))]: headerValue(), 'x-list': Array.from({ length: int(4) }, headerValue), 'x-empty': [], 42: 'numeric name', 'ключ': text(3) }),
    ])();
  const now = 1_764_000_000_000;
  const timestamp = () =>
    pick([
      () => undefined,
      () => undefined,
      () => null,
      () => now - int(100_000),
      () => String(now + int(100_000)),
      () => int(2_000), // '999' sorts after '1000': kafkajs orders them as strings
      () => String(int(2_000)),
      () => now - 30 * 86_400_000, // a delta past 2^31 ms: a varlong longer than 5 bytes
      () => 0, // falsy: the record's delta is taken from Date.now()
    ])();
  const message = () => {
    const m: Record<string, unknown> = { key: key(), value: value() };
    const h = headers();
    if (h !== undefined || r() < 0.5) m.headers = h;
    const t = timestamp();
    if (t !== undefined || r() < 0.5) m.timestamp = t;
    if (r() < 0.05) m.partition = int(3); // ignored by the encoder
    return m;
  };
  const producer = () =>
    pick([
      () => ({}),
      () => ({ transactionalId: null, producerId: 4711, producerEpoch: 3 }),
      () => ({ transactionalId: `txn-${ascii(int(20))}`, producerId: Long.fromValue(BigInt(2 ** 40 + int(1e6))), producerEpoch: int(32_767) }),
      () => ({ transactionalId: `tx-${text(4)}`, producerId: '9007199254740993', producerEpoch: 0 }),
      () => ({ transactionalId: '', producerId: -1, producerEpoch: 0 }),
    ])();
  const request = (): ProduceArgs => ({
    acks: pick([-1, 1]),
    timeout: pick([30_000, 1000, 0]),
    ...producer(),
    topicData: Array.from({ length: 1 + int(4) }, (_, t) => ({
      topic: pick([`ionflux.ws_${t}.events`, `t${t}-${text(3)}`, `${'x'.repeat(200)}${t}`]),
      partitions: Array.from({ length: 1 + int(4) }, (_, p) => ({
        partition: p * 3 + int(3),
        ...(r() < 0.7 ? { firstSequence: pick([0, int(1e6), 2 ** 31 - 1]) } : {}),
        messages: Array.from({ length: pick([0, 1, 2, int(20), int(120)]) }, message),
      })),
    })),
  });
  return { request };
}

describe("kafkajs's produce request encoder (patched: one pass, one buffer)", () => {
  it('is the patched one (node_modules installed with patches/kafkajs+2.2.4.patch)', () => {
    expect(APPLIED).toBe(true);
  });

  it('writes the bytes of kafkajs 2.2.4 for 150 random requests (keys, values, headers, timestamps, producers, topics, partitions)', async () => {
    const { request } = generator(20_260_129);
    for (let i = 0; i < 150; i++) await expectSameBytes(request(), { versions: [3 + (i % 5)] });
  }, 60_000);

  it("writes the bytes of kafkajs 2.2.4 for the command worker's batch: outcomes with the hub's 4 headers and state records, in a transaction", async () => {
    const outcomes = Array.from({ length: 200 }, (_, i) => ({
      key: `ws_${i % 7}`,
      value: Buffer.alloc(276, i),
      headers: { 'ionflux.event_id': `c${i}:outcome`, 'ionflux.event_type': 'noop.command.succeeded', 'ionflux.workspace_id': `ws_${i % 7}`, command_id: `c${i}` },
    }));
    const states = outcomes.map((o, i) => ({ key: `${o.key}:c${i}`, value: Buffer.alloc(336, 255 - i) }));
    await expectSameBytes({
      acks: -1,
      timeout: 30_000,
      transactionalId: 'ionflux-worker-commands-0',
      producerId: Long.fromValue(123_456n),
      producerEpoch: 2,
      topicData: [
        ...[0, 1, 2, 3, 4, 5, 6].map((w) => ({ topic: `ionflux.ws_${w}.commands.outcomes`, partitions: [{ partition: w % 3, firstSequence: 1000 * w, messages: outcomes.filter((o) => o.key === `ws_${w}`) }] })),
        { topic: 'ionflux.commands.state', partitions: [0, 1, 2].map((p) => ({ partition: p, firstSequence: 77 + p, messages: states.filter((_, i) => i % 3 === p) })) },
      ],
    });
  });

  it('writes the bytes of kafkajs 2.2.4 at the edges: no messages, no topics, a 1 MB value, 2000 headers, a record of 2^21 bytes', async () => {
    await expectSameBytes({ acks: -1, timeout: 30_000, topicData: [] });
    await expectSameBytes({ acks: 1, timeout: 5, topicData: [{ topic: 'empty', partitions: [] }, { topic: 'none', partitions: [{ partition: 0, messages: [] }] }] });
    await expectSameBytes({ acks: -1, timeout: 30_000, topicData: [{ topic: 't', partitions: [{ partition: 0, messages: [{ key: 'k', value: Buffer.alloc(1 << 20, 7) }, { key: null, value: 'x'.repeat((1 << 21) - 3) }] }] }] });
    const many = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`header-${i}`, i % 2 ? `v${i}` : Buffer.from([i & 255])]));
    await expectSameBytes({ acks: -1, timeout: 30_000, topicData: [{ topic: 't', partitions: [{ partition: 0, messages: [{ key: 'k', value: 'v', headers: many }] }] }] });
  });

  it('leaves to kafkajs what the one pass does not take, with the same bytes or the same error', async () => {
    const plain = { key: 'k', value: 'v' };
    const req = (messages: unknown[], extra: Partial<ProduceArgs> = {}): ProduceArgs => ({ acks: -1, timeout: 1000, ...extra, topicData: [{ topic: 't', partitions: [{ partition: 0, messages }] }] });
    // Compressed batches (gzip: kafkajs's own codec).
    await expectSameBytes(req([plain, { ...plain, headers: { a: 'b' } }], { compression: GZIP }), { onePass: false });
    // A value that is neither a string nor a Buffer, a message that is not a plain object, a
    // header without a value (kafkajs throws), a timestamp kafkajs would stringify, a topic not a string.
    await expectSameBytes(req([{ key: 'k', value: new Uint8Array([1, 2, 3]) }]), { onePass: false });
    await expectSameBytes(req([{ key: 12, value: 'v' }]), { onePass: false });
    await expectSameBytes(req([new (class { key = 'k'; value = 'v'; })()]), { onePass: false });
    await expectSameBytes(req([{ ...plain, headers: { a: null } }]), { onePass: false });
    await expectSameBytes(req([{ ...plain, headers: { a: undefined } }]), { onePass: false });
    await expectSameBytes(req([{ ...plain, headers: null }]), { onePass: false });
    await expectSameBytes(req([{ ...plain, timestamp: 10n }]), { onePass: false });
    await expectSameBytes({ acks: -1, timeout: 1000, topicData: [{ topic: 7, partitions: [] }] }, { onePass: false });
  });

  it("frames any request's payload as kafkajs 2.2.4 does, an Encoder or an object with `buf` and `buffer` (shared/bus/kafka/security.ts)", async () => {
    const payload = Buffer.from('000100020003ff', 'hex');
    for (const clientId of ['ionflux-admin', null, 'clïent-🔑']) {
      const request = { apiKey: 50, apiVersion: 0, encode: async () => ({ buf: payload, buffer: payload }) as unknown as Encoder };
      const ours = (await createRequest({ correlationId: 9, clientId, request })).buffer;
      expect(ours).toEqual((await referenceCreateRequest({ correlationId: 9, clientId, request })).buffer);
      expect(ours.subarray(-payload.length)).toEqual(payload);
    }
  });

  it('checksums batches as kafkajs 2.2.4 does, wherever a buffer starts in its memory (the CRC32C reads aligned 32-bit words)', () => {
    const ours = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number;
    const theirs = require('./fixtures/kafkajs-2.2.4/src/protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number;
    const r = rng(7);
    const data = Buffer.from(Array.from({ length: 5000 }, () => Math.floor(r() * 256)));
    for (let start = 0; start < 8; start++) {
      for (let length = 0; length < 300; length++) expect(ours(data.subarray(start, start + length))).toBe(theirs(data.subarray(start, start + length)));
      for (const length of [4093, 4096, 4992]) expect(ours(data.subarray(start, start + length))).toBe(theirs(data.subarray(start, start + length)));
    }
  });

  it('throws as kafkajs does for values it cannot write (an empty-string timestamp, acks out of range)', async () => {
    const t = (m: Record<string, unknown>, acks = -1): ProduceArgs => ({ acks, timeout: 1000, topicData: [{ topic: 't', partitions: [{ partition: 0, messages: [{ key: 'k', value: 'v', ...m }] }] }] });
    for (const args of [t({ timestamp: '' }), t({ timestamp: 1.5 }), t({}, 40_000)]) {
      const ours = await encodeWith(3, args, true);
      expect('error' in ours).toBe(true);
      expect(ours).toEqual(await encodeWith(3, args, false));
    }
  });
});

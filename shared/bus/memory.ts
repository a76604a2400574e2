import { HubError } from '../errors.ts';
import { deadLetterRecord } from './dead-letter.ts';
import { backoffDelay, defaultClassify } from './policy.ts';
import { topicPattern, topics as topicNames } from './topics.ts';
import type { Bus, FencedWriter, IncomingRecord, OutgoingRecord, OwnedPartition, Ownership, OwnershipOptions, PartitionOffsets, PlacedRecord, PublishOutcome, Reader, ReadOptions, RecordAck, SubscribeOptions, Subscription, TransformOptions } from './types.ts';

type Listener = () => void;

/**
 * The Bus in one process's memory, for unit tests of pipelines (never for integration tests):
 * topics of `partitions` partitions chosen by a hash of the key, atomic units, consumer groups
 * with the same failure policy as on Kafka, reads and readToEnd. `failPublishes` makes the next
 * publishes fail, as an unreachable broker would.
 */
export class MemoryBus implements Bus {
  private readonly logs = new Map<string, IncomingRecord[][]>();
  private readonly listeners = new Set<Listener>();
  private readonly committed = new Map<string, number>(); // `${group}|${topic}/${partition}` -> next offset
  private failures: { error: Error; remaining: number } | undefined;
  private readonly transforms = new Set<() => Promise<void>>();
  private closed = false;

  constructor(private readonly partitions = 3) {}

  /** The next `count` publishes (units) fail with `error`. */
  failPublishes(error: Error = new HubError('publish_failed', 'broker unavailable', { retryable: true }), count = Number.POSITIVE_INFINITY): void {
    this.failures = { error, remaining: count };
  }

  /** Publishes succeed again. */
  heal(): void {
    this.failures = undefined;
  }

  /** Resolves once every transform has worked through what was published so far (and what that published). */
  async transformed(): Promise<void> {
    for (;;) {
      const chains = [...this.transforms].map((t) => t());
      await Promise.all(chains);
      if ([...this.transforms].every((t, i) => t() === chains[i])) return;
    }
  }

  /** Every record of a topic, in partition then offset order (a synchronous readToEnd for assertions). */
  records(topic: string): IncomingRecord[] {
    return (this.logs.get(topic) ?? []).flat();
  }

  async publish(record: OutgoingRecord): Promise<RecordAck> {
    return (await this.publishAtomic([record]))[0]!;
  }

  async publishAtomic(records: OutgoingRecord[]): Promise<RecordAck[]> {
    return this.publishPlaced(records.map((record) => ({ record })));
  }

  private async publishPlaced(placed: PlacedRecord[]): Promise<RecordAck[]> {
    await Promise.resolve(); // like a broker, never acknowledges synchronously
    if (this.closed) throw new HubError('bus_closed', 'the bus is closed');
    if (this.failures && this.failures.remaining-- > 0) throw this.failures.error;
    const acks = placed.map((p) => this.append(p.record, p.partition));
    for (const l of this.listeners) l();
    return acks;
  }

  /** One process is one member: it owns every partition from the start, and nothing fences it. */
  async own<V>(o: OwnershipOptions<V>): Promise<Ownership> {
    const log = this.topic(o.topic);
    const writer: FencedWriter = { dead: false, send: async (placed) => void (await this.publishPlaced(placed)) };
    const parts: OwnedPartition<V>[] = log.map((_, partition) => ({ partition, writer, records: new Map<string, V>() }));
    const read = log.map(() => 0);
    let acquired = false;
    const pump = () => {
      log.forEach((records, p) => {
        for (; read[p]! < records.length; read[p]!++) {
          const r = records[read[p]!]!;
          if (!r.key) continue;
          const key = r.key.toString();
          const value = r.value === null ? undefined : o.parse(r.value);
          if (value === undefined) parts[p]!.records.delete(key);
          else parts[p]!.records.set(key, value);
          if (acquired) o.onChange(p, key, value);
        }
      });
    };
    pump();
    acquired = true;
    for (const p of parts) await o.onAcquired(p);
    this.listeners.add(pump);
    return { stop: async () => void this.listeners.delete(pump) };
  }

  publishBatch(records: OutgoingRecord[]): Promise<PublishOutcome[]> {
    return Promise.all(records.map((r) => this.publish(r).then((ack): PublishOutcome => ({ ok: true, ack }), (error: Error): PublishOutcome => ({ ok: false, error }))));
  }

  private append(r: OutgoingRecord, placed?: number): RecordAck {
    const log = this.topic(r.topic);
    const key = r.key === undefined || r.key === null ? null : Buffer.from(r.key);
    const partition = placed ?? (key ? hash(key) % log.length : Math.floor(Math.random() * log.length));
    const offset = String(log[partition]!.length);
    const rawHeaders = Object.fromEntries(Object.entries(r.headers ?? {}).map(([k, v]) => [k, Buffer.from(v)]));
    const headers = Object.fromEntries(Object.entries(rawHeaders).map(([k, v]) => [k, v.toString('utf8')]));
    const value = r.value === null ? null : Buffer.from(r.value);
    log[partition]!.push({ topic: r.topic, partition, offset, key, value, headers, rawHeaders, timestamp: String(Date.now()) });
    return { topic: r.topic, partition, offset };
  }

  private topic(name: string): IncomingRecord[][] {
    let log = this.logs.get(name);
    if (!log) this.logs.set(name, (log = Array.from({ length: this.partitions }, () => [])));
    return log;
  }

  async subscribe(o: SubscribeOptions): Promise<Subscription> {
    const patterns = o.subscriptions.map((s) => (typeof s === 'string' ? topicPattern(s) : s));
    const matches = (t: string) => patterns.some((p) => (typeof p === 'string' ? p === t : p.test(t)));
    const classify = o.classify ?? defaultClassify;
    const paused = new Map<string, number>();
    let stopped = false;
    await o.onAssigned?.();
    const handle = async (record: IncomingRecord): Promise<'done' | 'paused'> => {
      for (let attempts = 1; ; attempts++) {
        try {
          const handled = await o.handler(record);
          if (handled) await handled.settled;
          return 'done';
        } catch (e) {
          let verdict = classify(e);
          if (verdict.action !== 'dead_letter' && attempts >= (o.maxAttempts ?? 5)) verdict = { action: 'dead_letter' };
          if (verdict.action === 'pause') return paused.set(`${record.topic}/${record.partition}`, Date.now() + verdict.ms), 'paused';
          if (verdict.action === 'dead_letter') {
            await this.publish(deadLetterRecord({ dlqTopic: topicNames.deadLetter(o.service), service: o.service, record, message: record, error: e, attempts }));
            await o.onDeadLetter?.(record, e);
            return 'done';
          }
          await sleep(backoffDelay(attempts, o.backoffMs ?? { initial: 1, max: 10 }));
        }
      }
    };
    const poll = async () => {
      for (const [name, log] of this.logs) {
        if (!matches(name)) continue;
        for (let partition = 0; partition < log.length; partition++) {
          const tp = `${name}/${partition}`;
          const at = `${o.groupId}|${tp}`;
          if ((paused.get(tp) ?? 0) > Date.now()) continue;
          if (!this.committed.has(at)) this.committed.set(at, o.fromBeginning ? 0 : log[partition]!.length);
          while (!stopped && this.committed.get(at)! < log[partition]!.length) {
            if ((await handle(log[partition]![this.committed.get(at)!]!)) === 'paused') break;
            this.committed.set(at, this.committed.get(at)! + 1);
          }
        }
      }
    };
    return this.pump(poll, () => (stopped = true));
  }

  /** One member owning every partition: each partition's new records are one batch, written atomically with its offsets. */
  async transform(o: TransformOptions): Promise<Subscription> {
    const log = this.topic(o.topic);
    for (let p = 0; p < log.length; p++) await o.onAssigned?.(p);
    let stopped = false;
    const pump = async () => {
      for (let p = 0; p < log.length && !stopped; p++) {
        const at = `${o.groupId}|${o.topic}/${p}`;
        const from = this.committed.get(at) ?? 0;
        const records = log[p]!.slice(from);
        if (records.length === 0) continue;
        const out = await o.transform(records, p);
        await this.publishAtomic(out.records);
        this.committed.set(at, from + records.length);
        out.committed?.();
      }
    };
    return this.pump(pump, () => (stopped = true), true);
  }

  /**
   * Runs `work` after every publish and every 20 ms (a paused partition or a failed batch comes
   * again), one run at a time; `transformed()` waits for the runs of those marked `transform`.
   */
  private pump(work: () => Promise<void>, onStop: () => void, transform = false): Subscription {
    let running: Promise<void> = Promise.resolve();
    const kick = () => void (running = running.then(work).catch(() => undefined));
    const timer = setInterval(kick, 20);
    const current = () => running;
    this.listeners.add(kick);
    if (transform) this.transforms.add(current);
    kick();
    return {
      stop: async () => {
        onStop();
        clearInterval(timer);
        this.listeners.delete(kick);
        this.transforms.delete(current);
        await running;
      },
    };
  }

  async read(o: ReadOptions): Promise<Reader> {
    const matches = (t: string) => (typeof o.topic === 'string' ? t === o.topic : o.topic.test(t));
    const positions = new Map<string, number>();
    for (const [name, log] of this.logs) {
      if (!matches(name)) continue;
      log.forEach((records, p) => positions.set(`${name}/${p}`, o.from === 'end' ? records.length : o.from instanceof Map ? Number(o.from.get(p) ?? 0) : 0));
    }
    let running: Promise<void> = Promise.resolve();
    const pump = async () => {
      for (const [name, log] of this.logs) {
        if (!matches(name)) continue;
        for (let p = 0; p < log.length; p++) {
          const tp = `${name}/${p}`;
          const from = positions.get(tp) ?? 0;
          if (from >= log[p]!.length) continue;
          positions.set(tp, log[p]!.length);
          await o.onBatch({ topic: name, partition: p, records: log[p]!.slice(from), next: String(log[p]!.length) });
        }
      }
    };
    const kick = () => void (running = running.then(pump));
    this.listeners.add(kick);
    kick();
    const caughtUp = running;
    return { caughtUp, close: async () => void this.listeners.delete(kick) };
  }

  async readToEnd(topic: string): Promise<IncomingRecord[]> {
    return this.records(topic);
  }

  async offsets(topic: string): Promise<PartitionOffsets[]> {
    return (this.logs.get(topic) ?? []).map((records, partition) => ({ partition, low: '0', high: String(records.length) }));
  }

  async listTopics(): Promise<string[]> {
    return [...this.logs.keys()];
  }

  async ensureTopics(names: Iterable<string>): Promise<void> {
    for (const t of names) this.topic(t);
  }

  async healthy(): Promise<boolean> {
    return !this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
  }
}

/** FNV-1a over the key bytes: a stable partition per key. */
function hash(b: Buffer): number {
  let h = 0x811c9dc5;
  for (const byte of b) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

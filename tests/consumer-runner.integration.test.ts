import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DLQ_HEADERS } from '../shared/bus/dead-letter.ts';
import { createKafka } from '../shared/bus/kafka/client.ts';
import type { Subscription } from '../shared/bus/types.ts';
import { HubError } from '../shared/errors.ts';
import { topics, workspaceOfCommandTopic } from '../shared/bus/topics.ts';
import { infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';

describe('consumer runner against real Kafka', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  const runners: Subscription[] = [];
  beforeAll(async () => {
    infra = await realInfra('runner-test');
  });
  afterAll(async () => {
    await Promise.all(runners.map((r) => r.stop()));
    await infra.close();
  });

  async function start(topic: string, service: string, handler: (value: string) => Promise<void>, extra: { maxAttempts?: number } = {}) {
    await infra.bus.ensureTopics([topic]);
    const runner = await infra.bus.subscribe({
      service,
      groupId: uid('g-'),
      subscriptions: [topic],
      fromBeginning: true,
      handler: (r) => handler(r.value!.toString()),
      backoffMs: { initial: 20, max: 100 },
      ...extra,
    });
    runners.push(runner);
    return runner;
  }

  it('dead-letters a poison record with its bytes and origin headers, and still handles the next one', async () => {
    const topic = `ionflux.test.${uid()}`;
    const service = uid('svc');
    const handled: string[] = [];
    await start(topic, service, async (v) => {
      if (v === 'poison') throw new HubError('not_avro', 'record is not Avro');
      handled.push(v);
    });
    await infra.bus.publish({ topic, key: 'k', value: 'poison', headers: { 'trace-id': 'abc' } });
    await infra.bus.publish({ topic, key: 'k', value: 'good' });

    const [dead] = await readAll(infra.bus, `ionflux.dlq.${service}`, { atLeast: 1 });
    expect(dead!.value!.toString()).toBe('poison');
    expect(dead!.key!.toString()).toBe('k');
    expect(dead!.headers).toMatchObject({
      'trace-id': 'abc',
      [DLQ_HEADERS.topic]: topic,
      [DLQ_HEADERS.partition]: expect.stringMatching(/^\d+$/),
      [DLQ_HEADERS.offset]: expect.stringMatching(/^\d+$/),
      [DLQ_HEADERS.errorClass]: 'not_avro',
      [DLQ_HEADERS.errorMessage]: 'record is not Avro',
      [DLQ_HEADERS.service]: service,
    });
    await expect.poll(() => handled, { timeout: 10_000 }).toEqual(['good']);
  });

  it('retries a transient failure with backoff and then succeeds, without a dead letter', async () => {
    const topic = `ionflux.test.${uid()}`;
    const service = uid('svc');
    let calls = 0;
    const handled: string[] = [];
    await start(topic, service, async (v) => {
      calls += 1;
      if (calls < 3) throw new HubError('vendor_unavailable', 'try later', { retryable: true });
      handled.push(v);
    });
    await infra.bus.publish({ topic, key: 'k', value: 'flaky' });
    await expect.poll(() => handled, { timeout: 10_000 }).toEqual(['flaky']);
    expect(calls).toBe(3);
    expect(await readAll(infra.bus, `ionflux.dlq.${service}`)).toEqual([]);
  });

  it('with concurrent keys, goes on while queued work is in flight, commits only after it landed, and re-runs a record whose queued work failed', async () => {
    const topic = `ionflux.test.${uid()}`;
    const service = uid('svc');
    const groupId = uid('g-');
    await infra.bus.ensureTopics([topic]);
    const calls: string[] = [];
    let releaseFirst!: () => void;
    const firstQueued = new Promise<void>((r) => (releaseFirst = r));
    const runner = await infra.bus.subscribe({
      service, groupId,
      subscriptions: [topic], fromBeginning: true, concurrentKeys: true, backoffMs: { initial: 20, max: 100 },
      handler: async (r) => {
        const v = r.value!.toString();
        calls.push(v);
        const nth = calls.filter((c) => c === v).length;
        if (v === 'a1') return { settled: firstQueued };
        if (v === 'a2' && nth === 1) return { settled: Promise.reject(new HubError('publish_failed', 'not acknowledged', { retryable: true })) };
        return { settled: Promise.resolve() };
      },
    });
    runners.push(runner);
    // One produce request, so one fetched batch; a2 and a3 run although a1's queued work has not landed yet.
    await infra.bus.publishAtomic(['a1', 'a2', 'a3'].map((v) => ({ topic, key: 'same-key', value: v })));
    setTimeout(releaseFirst, 15_000).unref(); // never leave the runner stuck, even if an assertion fails
    await expect.poll(() => calls, { timeout: 10_000 }).toEqual(expect.arrayContaining(['a1', 'a2', 'a3']));
    // The group's committed offsets, as Kafka's own tools would show them.
    const admin = createKafka({ brokers: infraEnv().brokers, auth: infraEnv().auth, clientId: 'runner-test-offsets', logger: infra.logger }).admin();
    await admin.connect();
    const committed = async () => Number((await admin.fetchOffsets({ groupId, topics: [topic] }))[0]!.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0));
    await new Promise((r) => setTimeout(r, 1500));
    expect(await committed()).toBe(0);
    releaseFirst();
    await expect.poll(committed, { timeout: 10_000 }).toBe(3);
    await admin.disconnect();
    expect(calls.filter((c) => c === 'a2')).toHaveLength(2);
    expect(calls.filter((c) => c === 'a1' || c === 'a3')).toEqual(['a1', 'a3']);
  });

  it('with concurrent keys, a batch ends without waiting for its queued work: later records run meanwhile, and their offsets commit only once it landed', async () => {
    const topic = `ionflux.test.${uid()}`;
    const groupId = uid('g-');
    await infra.bus.ensureTopics([topic]);
    const calls: string[] = [];
    let releaseFirst!: () => void;
    const firstQueued = new Promise<void>((r) => (releaseFirst = r));
    setTimeout(releaseFirst, 20_000).unref(); // never leave the runner stuck, even if an assertion fails
    const runner = await infra.bus.subscribe({
      service: uid('svc'), groupId, subscriptions: [topic], fromBeginning: true, concurrentKeys: true,
      handler: async (r) => {
        const v = r.value!.toString();
        calls.push(v);
        return { settled: v === 'b1' ? firstQueued : Promise.resolve() };
      },
    });
    runners.push(runner);
    // Same key, so same partition; two produce requests, so b2 comes in a later fetch than b1.
    await infra.bus.publish({ topic, key: 'same-key', value: 'b1' });
    await expect.poll(() => calls, { timeout: 10_000 }).toEqual(['b1']);
    await infra.bus.publish({ topic, key: 'same-key', value: 'b2' });
    // b1's produce (say) has not been acknowledged yet: b2 is fetched and handled all the same.
    await expect.poll(() => calls, { timeout: 8_000 }).toEqual(['b1', 'b2']);
    const admin = createKafka({ brokers: infraEnv().brokers, auth: infraEnv().auth, clientId: uid('offsets'), logger: infra.logger }).admin();
    await admin.connect();
    try {
      const committed = async () => Number((await admin.fetchOffsets({ groupId, topics: [topic] }))[0]!.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0));
      await new Promise((r) => setTimeout(r, 1500));
      expect(await committed()).toBe(0); // neither b1 nor b2, which comes after it
      releaseFirst();
      await expect.poll(committed, { timeout: 10_000 }).toBe(2);
    } finally {
      await admin.disconnect();
    }
    expect(calls).toEqual(['b1', 'b2']);
  });

  it('commits the record running when it stops, before leaving the group: the next member does not take it again', async () => {
    const topic = `ionflux.test.${uid()}`;
    await infra.bus.ensureTopics([topic]);
    const groupId = uid('g-');
    let running!: () => void;
    const started = new Promise<void>((r) => (running = r));
    const runner = await infra.bus.subscribe({ service: uid('svc'), groupId, subscriptions: [topic], fromBeginning: true, handler: async () => (running(), await new Promise((r) => setTimeout(r, 2000))) });
    const ack = await infra.bus.publish({ topic, key: 'k', value: 'slow' });
    await started;
    await runner.stop(); // while the record runs: it finishes, then the member leaves
    const admin = createKafka({ brokers: infraEnv().brokers, auth: infraEnv().auth, clientId: uid('offsets'), logger: infra.logger }).admin();
    await admin.connect();
    try {
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      expect(committed!.partitions.find((p) => p.partition === ack.partition)?.offset).toBe(String(BigInt(ack.offset) + 1n));
    } finally {
      await admin.disconnect();
    }
  });

  it('with concurrent keys and an order key, runs records that share the order key one at a time whatever their Kafka keys', async () => {
    // A workspace's own command topic: one partition, written by its agent with keys of its choosing.
    const topic = topics.workspaceCommand('ordertest', uid('ws'));
    await infra.bus.ensureTopics([topic]);
    let running = 0;
    let most = 0;
    const handled: string[] = [];
    const runner = await infra.bus.subscribe({
      service: uid('svc'), groupId: uid('g-'), subscriptions: [topic], fromBeginning: true, concurrentKeys: true,
      // As the command worker does.
      orderKey: (t, key) => workspaceOfCommandTopic(t) ?? key,
      handler: async (r) => {
        most = Math.max(most, ++running);
        await new Promise((res) => setTimeout(res, 50));
        running--;
        handled.push(r.value!.toString());
      },
    });
    runners.push(runner);
    await infra.bus.publishAtomic(Array.from({ length: 6 }, (_, i) => ({ topic, key: `agent-key-${i}`, value: String(i) })), { orderKey: 'x' });
    await expect.poll(() => handled.length, { timeout: 15_000 }).toBe(6);
    expect(most).toBe(1);
  });

  it('dead-letters a record whose transient failure outlasts the retry budget', async () => {
    const topic = `ionflux.test.${uid()}`;
    const service = uid('svc');
    let calls = 0;
    await start(topic, service, async () => {
      calls += 1;
      throw new HubError('vendor_unavailable', 'still down', { retryable: true });
    }, { maxAttempts: 3 });
    await infra.bus.publish({ topic, key: 'k', value: 'never' });
    const [dead] = await readAll(infra.bus, `ionflux.dlq.${service}`, { atLeast: 1 });
    expect(dead!.headers[DLQ_HEADERS.attempts]).toBe('3');
    expect(dead!.headers[DLQ_HEADERS.retryable]).toBe('true');
    expect(calls).toBe(3);
  });

  it('redelivers a record to the group when the process is killed before the commit', async () => {
    const topic = `ionflux.test.${uid()}`;
    const group = uid('g-');
    await infra.bus.ensureTopics([topic]);
    await infra.bus.publish({ topic, key: 'k', value: 'crash' });

    const child = spawn(process.execPath, ['--import', 'tsx', 'tests/fixtures/crashing-consumer.ts', topic, group], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exit = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    expect(exit).toBe('SIGKILL');
    expect(out).toContain('handled 0 crash');

    const seen: string[] = [];
    const runner = await infra.bus.subscribe({
      service: 'crash-test', groupId: group, subscriptions: [topic], fromBeginning: true,
      handler: async (r) => void seen.push(`${r.offset} ${r.value}`),
    });
    runners.push(runner);
    await expect.poll(() => seen, { timeout: 20_000 }).toEqual(['0 crash']);
  });

  it('brings state up to date on joining, before handling a record of its partitions, and tries again while that fails', async () => {
    const topic = `ionflux.test.${uid()}`;
    const service = uid('svc');
    await infra.bus.ensureTopics([topic]);
    await infra.bus.publish({ topic, key: 'k', value: 'waiting' });
    const calls: number[] = [];
    let readyAt = 0;
    const handled: { value: string; at: number }[] = [];
    runners.push(
      await infra.bus.subscribe({
        service,
        groupId: uid('g-'),
        subscriptions: [topic],
        fromBeginning: true,
        backoffMs: { initial: 50, max: 100 },
        onAssigned: async () => {
          calls.push(Date.now());
          if (calls.length === 1) throw new HubError('table_not_ready', 'not read to its end yet', { retryable: true });
          await new Promise((r) => setTimeout(r, 1500));
          readyAt = Date.now();
        },
        handler: async (r) => void handled.push({ value: r.value!.toString(), at: Date.now() }),
      }),
    );
    await expect.poll(() => handled.map((h) => h.value), { timeout: 20_000 }).toEqual(['waiting']);
    expect(calls.length).toBe(2);
    expect(readyAt).toBeGreaterThan(0);
    expect(handled[0]!.at).toBeGreaterThanOrEqual(readyAt);
  });

});

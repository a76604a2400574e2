import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runConsumer, type ConsumerRunner } from '../shared/bus/consumer.ts';
import { DLQ_HEADERS } from '../shared/bus/dead-letter.ts';
import { HubError } from '../shared/errors.ts';
import { readAll, realInfra, uid } from './helpers/infra.ts';

describe('consumer runner against real Kafka', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  const runners: ConsumerRunner[] = [];
  beforeAll(async () => {
    infra = await realInfra('runner-test');
  });
  afterAll(async () => {
    await Promise.all(runners.map((r) => r.stop()));
    await infra.close();
  });

  async function start(topic: string, service: string, handler: (value: string) => Promise<void>, extra: { maxAttempts?: number } = {}) {
    await infra.provisioner.ensure([topic]);
    const runner = await runConsumer({
      kafka: infra.kafka,
      bus: infra.bus,
      logger: infra.logger,
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

    const [dead] = await readAll(infra.kafka, `ionflux.dlq.${service}`, { atLeast: 1 });
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
    expect(await readAll(infra.kafka, `ionflux.dlq.${service}`, { timeoutMs: 500 })).toEqual([]);
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
    const [dead] = await readAll(infra.kafka, `ionflux.dlq.${service}`, { atLeast: 1 });
    expect(dead!.headers[DLQ_HEADERS.attempts]).toBe('3');
    expect(dead!.headers[DLQ_HEADERS.retryable]).toBe('true');
    expect(calls).toBe(3);
  });

  it('redelivers a record to the group when the process is killed before the commit', async () => {
    const topic = `ionflux.test.${uid()}`;
    const group = uid('g-');
    await infra.provisioner.ensure([topic]);
    await infra.bus.publish({ topic, key: 'k', value: 'crash' });

    const child = spawn(process.execPath, ['--import', 'tsx', 'tests/fixtures/crashing-consumer.ts', topic, group], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exit = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    expect(exit).toBe('SIGKILL');
    expect(out).toContain('handled 0 crash');

    const seen: string[] = [];
    const runner = await runConsumer({
      kafka: infra.kafka, bus: infra.bus, logger: infra.logger, service: 'crash-test', groupId: group, subscriptions: [topic], fromBeginning: true,
      handler: async (r) => void seen.push(`${r.offset} ${r.value}`),
    });
    runners.push(runner);
    await expect.poll(() => seen, { timeout: 20_000 }).toEqual(['0 crash']);
  });
});

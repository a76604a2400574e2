import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaBus } from '../../shared/bus/kafka/bus.ts';
import { topics } from '../../shared/bus/topics.ts';
import { createEventCodec } from '../../shared/events/codec.ts';
import { createRegistry } from '../../shared/events/registry.ts';
import { dedicatedBroker } from '../helpers/broker.ts';
import { runCli } from '../helpers/cli.ts';
import { capturingLogger, infraEnv, readAll, uid } from '../helpers/infra.ts';
import { startIngester, type RunningIngester } from '../helpers/ingester.ts';
import { loadFixture, shopifyHeaders } from '../helpers/sign.ts';

const SECRET = `shpss_${randomBytes(16).toString('hex')}`;
const ORDER = loadFixture('shopify', 'orders-create');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ingester when the broker dies (items 7, 8, 20)', () => {
  const broker = dedicatedBroker(19092);
  const ws = uid('ws');
  const shop = `${uid('shop')}.myshopify.com`;
  const inbox = `ionflux.inbox.${uid('rel')}`;
  let ingester: RunningIngester;

  beforeAll(async () => {
    await broker.start();
    expect((await runCli(['link', 'shopify', shop, ws], { env: broker.adminEnv() })).code).toBe(0);
    // The ingester as its own principal on this broker: its ACLs are all it has.
    const asIngester = { KAFKA_BROKERS: broker.brokers.join(','), KAFKA_SASL_USERNAME: 'ionflux-webhook-ingester', KAFKA_SASL_PASSWORD: '', KAFKA_SASL_PASSWORD_FILE: `${broker.credentials}/ionflux-webhook-ingester.password` };
    ingester = await startIngester({ ...asIngester, SHOPIFY_API_SECRET: SECRET, INGESTER_MAX_IN_FLIGHT: '200', IONFLUX_INBOX_TOPIC: inbox });
  }, 180_000);
  afterAll(async () => {
    await ingester?.stop();
    await broker.remove();
  }, 120_000);

  const send = (webhookId = randomUUID()) => ingester.post('/webhooks/shopify', ORDER, shopifyHeaders({ topic: 'orders/create', shop, secret: SECRET, body: ORDER, webhookId }));

  it('answers 5xx for what Kafka did not acknowledge, 503 within 4.5 s while it is down, and keeps every 2xx record after a SIGKILL', async () => {
    const accepted = new Map<string, string>(); // webhook id -> event id
    const failedStatuses: number[] = [];
    const downLatencies: number[] = [];
    // From the kill until the restarted broker is up (its start included).
    let [downFrom, downUntil] = [Infinity, Infinity];
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const id = randomUUID();
        const sentAt = Date.now();
        const res = await send(id).catch(() => ({ status: 0, body: {} as Record<string, unknown>, ms: 0 }));
        if (res.status === 200) accepted.set(id, (res.body.event_ids as string[])[0]!);
        else failedStatuses.push(res.status);
        // Every request the outage overlaps (in flight at the kill, sent while the broker is down
        // or starting) is answered within the vendor's deadline: a 503, or a 200 once it is back.
        if (Date.now() > downFrom && sentAt < downUntil) downLatencies.push(res.ms);
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await sleep(3000);
    const beforeKill = accepted.size;
    downFrom = Date.now();
    broker.kill();
    await sleep(8000); // longer than a vendor's 5 s deadline
    await broker.start();
    downUntil = Date.now();
    await sleep(8000);
    stop = true;
    await Promise.all(workers);

    expect(beforeKill).toBeGreaterThan(0);
    expect(failedStatuses.length).toBeGreaterThan(0);
    expect(failedStatuses.every((s) => s === 503)).toBe(true);
    expect(downLatencies.length).toBeGreaterThan(0);
    expect(Math.max(...downLatencies)).toBeLessThan(4500);
    expect(accepted.size).toBeGreaterThan(beforeKill); // it recovered

    const logger = capturingLogger('reader').logger;
    const bus = createKafkaBus({ brokers: broker.brokers, auth: broker.auth(), clientId: 'reliability-reader', logger });
    const codec = await createEventCodec(createRegistry(infraEnv().registryUrl));
    // Until every acknowledged delivery's event is there: deliveries answered 503 may have landed
    // too (Kafka took them after the answer), so a record count alone can be reached early.
    const onTopic = new Map<string, number>();
    for (const deadline = Date.now() + 60_000; ; ) {
      const records = await readAll(bus, topics.event('shopify', ws, 'orders', 'created'), { atLeast: accepted.size, timeoutMs: 30_000 });
      onTopic.clear();
      for (const r of records) {
        const e = await codec.decode(r.value!);
        onTopic.set(e.event_id, (onTopic.get(e.event_id) ?? 0) + 1);
      }
      if ([...accepted.values()].every((id) => onTopic.has(id)) || Date.now() > deadline) break;
      await sleep(500);
    }
    const missing = [...accepted.values()].filter((id) => !onTopic.has(id));
    // Where a missing one is: its inbox record, its delivery marker, a dead letter, and what the ingester said.
    let where = '';
    if (missing.length) {
      const webhookOf = new Map([...accepted].map(([w, id]) => [id, w]));
      const [inboxed = [], markers = [], dead = []] = await Promise.all([inbox, `ionflux.state.webhook-deliveries-${inbox.slice('ionflux.inbox.'.length)}`, topics.deadLetter('webhook-ingester')].map((t) => bus.readToEnd(t).catch(() => [])));
      where = missing.map((id) => {
        const w = webhookOf.get(id)!;
        return `${id} (webhook ${w}): inbox ${JSON.stringify(inboxed.filter((r) => r.headers['x-shopify-webhook-id'] === w).map((r) => `${r.partition}:${r.offset}`))}, markers ${JSON.stringify(markers.filter((r) => r.key?.toString().endsWith(w)).map((r) => r.value?.toString()))}, dead letters ${dead.filter((r) => r.value?.toString().includes(w) || Object.values(r.headers).some((h) => h?.includes(w))).length}`;
      }).join('\n') + `\n${ingester.output.filter((l) => /"level":(40|50)/.test(l)).slice(-30).join('\n')}`;
    }
    await bus.close();
    expect(missing, where).toEqual([]);
    expect([...onTopic.values()].every((n) => n === 1)).toBe(true);
  }, 180_000);

  it('sheds load with 503 + Retry-After past its in-flight limit instead of queueing without bound (item 20)', async () => {
    const results = await Promise.all(Array.from({ length: 600 }, () => send()));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s !== 200 && s !== 503)).toEqual([]);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
    const metrics = await fetch(`${ingester.opsUrl}/metrics`).then((r) => r.text());
    const rss = Number(/process_resident_memory_bytes\{[^}]*\} (\d+)/.exec(metrics)?.[1]);
    expect(rss).toBeLessThan(512 * 1024 * 1024);
  }, 120_000);
});

/**
 * Load generator and record counter for `make bench-ingest` (bench/ingest/run.sh).
 *
 *   payload <fixture.json> <out.json>   the ~2 KB orders/create body both systems receive (same bytes)
 *   run                                 load one system, print one JSON document on stdout
 *   count                               committed records on a topic, print JSON on stdout
 *
 * `run` (env): LOAD_URL (…/webhooks/shopify), LOAD_SECRET, LOAD_PAYLOAD (file), LOAD_LABEL,
 * LOAD_CONNECTIONS ("16,32,64"), LOAD_STEP_SECONDS (8), LOAD_HALF_SECONDS (10), LOAD_WARMUP_SECONDS (3),
 * LOAD_HALF_RATE (unset: half the max zero-error rate; a number: that rate for every system, so
 * their latencies compare at one load).
 *   1. warm-up (not scored), then one closed-loop autocannon run per connection count: the
 *      highest 2xx/s among runs where EVERY response was 2xx and no socket error or timeout
 *      happened is the system's max zero-error rate;
 *   2. half that rate with autocannon's `overallRate` for LOAD_HALF_SECONDS: p50/p99. autocannon
 *      paces per connection per second (each connection sends its quota back to back when the
 *      second starts), so its "half load" is bursty; its percentiles are corrected for
 *      coordinated omission. We also keep the raw per-response times it reports (float ms).
 *   3. the same half rate again, open loop and evenly paced (node:http, one request every
 *      1/rate s, latency measured from the scheduled send time, so a stall is not hidden).
 * Every request has distinct X-Shopify-Webhook-Id and X-Shopify-Event-Id (the hub dedupes on
 * the webhook id), a correct X-Shopify-Hmac-Sha256 and every header Shopify sends. LOAD_ORDERS:
 * distinct (default, another order id per request, same size) or same (identical bytes).
 *
 * `count` (env): COUNT_TOPIC, COUNT_EXPECT (records expected), KAFKA_BROKERS. COUNT_MODE=offsets:
 * sum of high - low watermarks (a fresh topic written without transactions; the peer's records
 * are snappy-compressed by kafka_franz's default, which kafkajs cannot decode). Otherwise consumes the topic
 * from the beginning with isolation read_committed (kafkajs' default), so transaction markers
 * and aborted records are not counted, until it has EXPECT records and 2 s pass with none new
 * (or 10 s with none at all / 90 s in total).
 */
import autocannon from 'autocannon';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Kafka, logLevel } from 'kafkajs';

const SHOP = 'bench-shop.myshopify.com';
const log = (msg: string) => process.stderr.write(`[load] ${msg}\n`);
const num = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- payload ---------------------------------------------------------------------------------

/**
 * Shopify's published orders/create sample, dated now, minified, with its first line item only and the
 * biggest optional fields dropped until it fits, then `note` padded so the body is exactly
 * `size` bytes. Keeps what the hub's schema needs (id, admin_graphql_api_id, name, line_items).
 */
function makePayload(fixture: Buffer, size: number): Buffer {
  // Integers past 2^53 (Shopify's ids) would be rounded by JSON.parse: carry their digits as
  // marked strings and put them back as bare numbers, so the sample's digits survive.
  const order = JSON.parse(fixture.toString('utf8').replace(/(:\s*)(\d{16,})(?=\s*[,}\]])/g, '$1"__int__$2"')) as Record<string, unknown>;
  const text = () => JSON.stringify(order).replace(/"__int__(\d+)"/g, '$1');
  const keep = new Set(['id', 'admin_graphql_api_id', 'name', 'line_items', 'note', 'email', 'created_at', 'updated_at', 'currency', 'total_price', 'order_number']);
  if (Array.isArray(order.line_items)) order.line_items = order.line_items.slice(0, 1);
  // The sample's dates (2021) are older than the entity versions the processor keeps (30 days):
  // each version would be dropped as soon as written. Dated now, they are kept, as in production.
  const now = new Date().toISOString();
  if ('created_at' in order) order.created_at = now;
  if ('updated_at' in order) order.updated_at = now;
  order.note = '';
  const bytes = () => Buffer.byteLength(text());
  const budget = size - 16;
  while (bytes() > budget) {
    const [biggest] = Object.keys(order)
      .filter((k) => !keep.has(k))
      .sort((a, b) => JSON.stringify(order[b]).length - JSON.stringify(order[a]).length);
    if (!biggest) break;
    delete order[biggest];
  }
  const pad = size - bytes();
  if (pad < 0) throw new Error(`cannot trim the fixture to ${size} bytes`);
  order.note = `bench padding ${'x'.repeat(Math.max(0, pad - 14))}`.slice(0, pad);
  const out = Buffer.from(text());
  if (out.length !== size) throw new Error(`payload is ${out.length} bytes, wanted ${size}`);
  return out;
}

// ---- load ------------------------------------------------------------------------------------

interface Step {
  /** half_paced, hub only: from the 2xx answer to its event being readable (read_committed). */
  e2e_ms?: { p50: number; p99: number; max: number; count: number; missing: number };
  phase: string;
  connections: number;
  overall_rate?: number;
  seconds: number;
  sent: number;
  ok_2xx: number;
  non_2xx: number;
  errors: number;
  timeouts: number;
  status_codes: Record<string, number>;
  rps_2xx: number;
  zero_error: boolean;
  latency_ms: { p50: number; p90: number; p99: number; max: number; mean: number };
  raw_latency_ms?: { p50: number; p99: number; max: number };
  /** Hub (LOAD_METRICS_URL): inbox deliveries the processor committed per second during the step, and how many appended ones it had not committed at the step's end. */
  processed_rps?: number;
  backlog_at_end?: number;
  /**
   * half_paced, hub only (LOAD_METRICS_URL): the share of answers, and of the edge's inbox appends
   * (ionflux_webhook_publish_seconds), slower than 25 and 100 ms. Answers slow where appends are
   * not waited elsewhere than on Kafka (the event loop, the cores).
   */
  slow_share?: { answers_over_25ms: number; answers_over_100ms: number; appends_over_25ms: number; appends_over_100ms: number };
  /** half_paced, hub only: the edge thread's event-loop delay (p99, max) and GC milliseconds per second by kind, over the phase. */
  edge_thread?: { loop_delay_p99_ms: number; loop_delay_max_ms: number; gc_ms_per_s: Record<string, number> };
}

function percentiles(values: number[]): { p50: number; p90: number; p99: number; max: number; mean: number } {
  if (!values.length) return { p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const s = Float64Array.from(values).sort();
  const at = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
  return { p50: round(at(50)), p90: round(at(90)), p99: round(at(99)), max: round(s[s.length - 1]!), mean: round(values.reduce((a, b) => a + b, 0) / values.length) };
}

/**
 * From a 2xx answer to its event being readable: a read_committed consumer on the event topic,
 * joined before the run, notes when each event id (header) arrives; the load generator notes when
 * each answer naming it came. Same process, same clock.
 */
async function endToEnd(topic: string) {
  const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
  const kafka = new Kafka({ clientId: 'bench-ingest-e2e', brokers, logLevel: logLevel.NOTHING, ...(process.env.KAFKA_SASL_USERNAME ? { sasl: { mechanism: 'scram-sha-256' as const, username: process.env.KAFKA_SASL_USERNAME, password: process.env.KAFKA_SASL_PASSWORD ?? '' } } : {}) });
  const groupId = `bench-ingest-e2e-${Date.now()}-${randomBytes(3).toString('hex')}`;
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 20 });
  const answered = new Map<string, number>();
  const read = new Map<string, number>();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: false });
  const joined = new Promise<void>((r) => consumer.on(consumer.events.GROUP_JOIN, () => r()));
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const now = performance.now();
      for (const m of batch.messages) {
        const id = m.headers?.['ionflux.event_id']?.toString();
        if (id) read.set(id, now);
      }
    },
  });
  await joined;
  await sleep(1000); // its fetch positions are set
  return {
    answered,
    async finish() {
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && [...answered.keys()].some((id) => !read.has(id))) await sleep(100);
      await consumer.disconnect();
      const admin = kafka.admin();
      await admin.connect();
      await admin.deleteGroups([groupId]).catch(() => undefined);
      await admin.disconnect();
      const deltas = [...answered].flatMap(([id, at]) => (read.has(id) ? [Math.max(0, read.get(id)! - at)] : []));
      const p = percentiles(deltas);
      return { p50: p.p50, p99: p.p99, max: p.max, count: deltas.length, missing: answered.size - deltas.length };
    },
  };
}

/** The hub's inbox counters (LOAD_METRICS_URL, its /metrics): appended by the edge, committed by the processor. */
async function inboxCounts(): Promise<{ appended: number; committed: number } | undefined> {
  const url = process.env.LOAD_METRICS_URL;
  if (!url) return undefined;
  const text = await (await fetch(url)).text();
  const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { appended: value('ionflux_inbox_appended_total'), committed: value('ionflux_inbox_committed_total') };
}

/**
 * From the hub's /metrics (LOAD_METRICS_URL): its inbox appends so far by latency bucket
 * (cumulative counts by `le`, all vendors), the edge thread's GC seconds so far by kind, and its
 * event-loop delay p99 and max since the previous scrape (prom-client resets it on each).
 */
async function edgeMetrics(): Promise<{ appends: Map<string, number>; gc: Map<string, number>; loopP99: number; loopMax: number } | undefined> {
  const url = process.env.LOAD_METRICS_URL;
  if (!url) return undefined;
  const text = await (await fetch(url)).text();
  const appends = new Map<string, number>();
  for (const m of text.matchAll(/^ionflux_webhook_publish_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)$/gm)) appends.set(m[1]!, (appends.get(m[1]!) ?? 0) + Number(m[2]));
  const gc = new Map<string, number>();
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{[^}]*kind="([^"]+)"[^}]*\} (\S+)$/gm)) gc.set(m[1]!, (gc.get(m[1]!) ?? 0) + Number(m[2]));
  const gauge = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { appends, gc, loopP99: gauge('nodejs_eventloop_lag_p99_seconds'), loopMax: gauge('nodejs_eventloop_lag_max_seconds') };
}

/** The share (%) of appends between two bucket snapshots slower than `seconds` (a bucket bound). */
function shareOver(before: Map<string, number>, after: Map<string, number>, seconds: string): number {
  const delta = (le: string) => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const all = delta('+Inf');
  return all > 0 ? round((100 * (all - delta(seconds))) / all, 2) : NaN;
}

async function run(): Promise<void> {
  const url = process.env.LOAD_URL ?? '';
  const secret = process.env.LOAD_SECRET ?? '';
  const label = (process.env.LOAD_LABEL ?? 'system').replace(/[^a-z0-9-]/gi, '');
  if (!url || !secret || !process.env.LOAD_PAYLOAD) throw new Error('LOAD_URL, LOAD_SECRET and LOAD_PAYLOAD are required');
  const body = readFileSync(process.env.LOAD_PAYLOAD);
  const connections = (process.env.LOAD_CONNECTIONS ?? '16,32,64').split(',').map(Number).filter((n) => n > 0);
  const stepSeconds = num('LOAD_STEP_SECONDS', 8);
  const halfSeconds = num('LOAD_HALF_SECONDS', 10);
  const warmupSeconds = num('LOAD_WARMUP_SECONDS', 3);
  const fixedHalfRate = process.env.LOAD_HALF_RATE ? Math.max(1, Math.floor(num('LOAD_HALF_RATE', 0))) : undefined;
  const { pathname, host } = new URL(url);

  // LOAD_ORDERS=distinct (default): every delivery is another order. The 18 digits of the order
  // id ("id" and admin_graphql_api_id) are rewritten in place, so the size stays the same and
  // the HMAC is computed per request. LOAD_ORDERS=same: the very same bytes every time (one order
  // created over and over; the hub publishes one entity's deliveries one at a time).
  const distinctOrders = (process.env.LOAD_ORDERS ?? 'distinct') !== 'same';
  const text = body.toString('latin1');
  const idAt = [/"id":(\d{18})[,}]/.exec(text), /"admin_graphql_api_id":"gid:\/\/shopify\/Order\/(\d{18})"/.exec(text)].map((m) => {
    if (!m) throw new Error('payload has no 18-digit order id to vary');
    return m.index + m[0].indexOf(m[1]!);
  });
  const sameHmac = createHmac('sha256', secret).update(body).digest('base64');
  const prefix = `${label}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  let seq = 0;
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    'X-Shopify-Hmac-Sha256': sameHmac,
    'X-Shopify-Topic': 'orders/create',
    'X-Shopify-Shop-Domain': SHOP,
    'X-Shopify-Triggered-At': new Date().toISOString(),
    'X-Shopify-API-Version': '2025-10',
  };
  /** The next delivery: distinct webhook and event ids, and (distinct mode) its own order id and HMAC. */
  const nextDelivery = (h: Record<string, string>): { headers: Record<string, string>; body: Buffer } => {
    const n = seq++;
    h['X-Shopify-Webhook-Id'] = `${prefix}-w${n.toString(36)}`;
    h['X-Shopify-Event-Id'] = `${prefix}-e${n.toString(36)}`;
    if (!distinctOrders) return { headers: h, body };
    // Order ids from 8e17 up, the same in every run (each run's processor keeps its versions in
    // state topics of the run's own, deleted at its end).
    const digits = String(800_000_000_000_000_000n + BigInt(n));
    const b = Buffer.from(body);
    for (const at of idAt) b.write(digits, at, 'latin1');
    h['X-Shopify-Hmac-Sha256'] = createHmac('sha256', secret).update(b).digest('base64');
    return { headers: h, body: b };
  };

  async function cannon(phase: string, conns: number, seconds: number, overallRate?: number): Promise<Step> {
    const raw: number[] = [];
    const before = await inboxCounts();
    const instance = autocannon({
      url: `http://${host}`,
      connections: conns,
      duration: seconds,
      ...(overallRate ? { overallRate } : {}),
      timeout: 10,
      requests: [
        {
          method: 'POST',
          path: pathname,
          headers,
          body,
          setupRequest: (req: { headers: Record<string, string>; body: Buffer }) => {
            const d = nextDelivery({ ...req.headers });
            req.headers = d.headers;
            req.body = d.body;
            return req;
          },
        },
      ],
    });
    instance.on('response', (_c: unknown, status: number, _b: number, ms: number) => {
      if (status >= 200 && status < 300) raw.push(ms);
    });
    const r = await instance;
    const codes: Record<string, number> = {};
    for (const [code, v] of Object.entries(r.statusCodeStats ?? {})) codes[code] = (v as { count: number }).count;
    const ok = r['2xx'];
    const step: Step = {
      phase,
      connections: conns,
      ...(overallRate ? { overall_rate: overallRate } : {}),
      seconds: r.duration,
      sent: r.requests.sent,
      ok_2xx: ok,
      non_2xx: r.non2xx,
      errors: r.errors,
      timeouts: r.timeouts,
      status_codes: codes,
      rps_2xx: round(ok / r.duration, 1),
      zero_error: r.non2xx === 0 && r.errors === 0 && r.timeouts === 0 && ok > 0,
      latency_ms: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: r.latency.average },
    };
    const p = percentiles(raw);
    step.raw_latency_ms = { p50: p.p50, p99: p.p99, max: p.max };
    const after = await inboxCounts();
    if (before && after) {
      step.processed_rps = round((after.committed - before.committed) / r.duration, 1);
      step.backlog_at_end = after.appended - after.committed;
      log(`${label} ${phase}: the processor committed ${step.processed_rps} deliveries/s; ${step.backlog_at_end} appended but not yet committed at the end`);
    }
    log(`${label} ${phase} c=${conns}${overallRate ? ` rate=${overallRate}/s` : ''}: ${step.rps_2xx} 2xx/s, 2xx=${ok} non2xx=${r.non2xx} errors=${r.errors} timeouts=${r.timeouts} p50=${step.latency_ms.p50} p99=${step.latency_ms.p99} ms (raw p50=${p.p50} p99=${p.p99})`);
    return step;
  }

  /**
   * Open loop: request i is due at start + i/rate and its latency counts from when it was due.
   * Raw keep-alive sockets (as autocannon uses) rather than node:http, whose client costs too
   * much CPU per request to keep a few thousand requests/s on time on a 2-core machine.
   * Up to 256 connections, one request outstanding on each; a due request waits for a free one.
   */
  async function paced(rate: number, seconds: number): Promise<Step> {
    const maxConns = 256;
    const e2e = process.env.LOAD_E2E_TOPIC ? await endToEnd(process.env.LOAD_E2E_TOPIC) : undefined;
    const bucketsBefore = await edgeMetrics();
    const { hostname, port } = new URL(url);
    const request = () => {
      const d = nextDelivery({ ...headers });
      const head = `POST ${pathname} HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\n${Object.entries(d.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}Content-Length: ${d.body.length}\r\n\r\n`;
      return Buffer.concat([Buffer.from(head, 'latin1'), d.body]);
    };
    interface Conn { sock: net.Socket; due: number | null; buf: Buffer }
    const lat: number[] = [];
    const codes: Record<string, number> = {};
    let ok = 0, non2xx = 0, errors = 0, sent = 0, open = 0, peak = 0;
    const idle: Conn[] = [];
    const waiting: number[] = [];
    const total = Math.round(rate * seconds);
    let finished = 0;
    let allDone: () => void = () => undefined;
    const done = new Promise<void>((r) => (allDone = r));
    const settle = () => ++finished === total && allDone();
    const send = (c: Conn, due: number) => {
      c.due = due;
      sent++;
      c.sock.write(request());
    };
    const release = (c: Conn) => {
      const next = waiting.shift();
      if (next !== undefined) send(c, next);
      else idle.push(c);
    };
    const onData = (c: Conn, chunk: Buffer) => {
      c.buf = c.buf.length ? Buffer.concat([c.buf, chunk]) : chunk;
      for (;;) {
        const end = c.buf.indexOf('\r\n\r\n');
        if (end < 0 || c.due === null) return;
        const headText = c.buf.subarray(0, end).toString('latin1');
        const status = Number(headText.slice(9, 12));
        const cl = /\r\ncontent-length:\s*(\d+)/i.exec(headText);
        let size: number;
        if (cl) size = end + 4 + Number(cl[1]);
        else if (/\r\ntransfer-encoding:\s*chunked/i.test(headText)) {
          const term = c.buf.indexOf('\r\n0\r\n\r\n', end);
          if (term < 0) return;
          size = term + 7;
        } else size = end + 4;
        if (c.buf.length < size) return;
        const answer = e2e && status === 200 ? /"event_ids":\["([0-9a-f-]{36})"/.exec(c.buf.subarray(end + 4, size).toString('latin1'))?.[1] : undefined;
        c.buf = c.buf.subarray(size);
        codes[status] = (codes[status] ?? 0) + 1;
        if (status >= 200 && status < 300) {
          ok++;
          lat.push(performance.now() - c.due);
          if (answer) e2e!.answered.set(answer, performance.now());
        } else non2xx++;
        c.due = null;
        settle();
        release(c);
      }
    };
    const connect = (due: number) => {
      peak = Math.max(peak, ++open);
      const c: Conn = { sock: net.connect({ host: hostname, port: Number(port) }), due: null, buf: Buffer.alloc(0) };
      c.sock.setNoDelay(true);
      c.sock.on('connect', () => send(c, due));
      c.sock.on('data', (d: Buffer) => onData(c, d));
      c.sock.on('error', () => undefined);
      c.sock.on('close', () => {
        open--;
        const i = idle.indexOf(c);
        if (i >= 0) idle.splice(i, 1);
        if (c.due !== null) {
          errors++;
          c.due = null;
          settle();
        }
        const next = waiting.shift();
        if (next !== undefined) connect(next);
      });
    };
    const dispatch = (due: number) => {
      const c = idle.pop();
      if (c) send(c, due);
      else if (open < maxConns) connect(due);
      else waiting.push(due);
    };
    const start = performance.now();
    let next = 0;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        while (next < total && start + (next * 1000) / rate <= now) dispatch(start + (next++ * 1000) / rate);
        if (next >= total) return resolve();
        setTimeout(tick, 1);
      };
      tick();
    });
    const timeout = setTimeout(allDone, 15_000);
    await done;
    clearTimeout(timeout);
    const elapsed = (performance.now() - start) / 1000;
    for (const c of idle.splice(0)) c.sock.destroy();
    const p = percentiles(lat);
    const bucketsAfter = bucketsBefore && (await edgeMetrics());
    const over = (ms: number) => round((100 * lat.filter((l) => l > ms).length) / Math.max(1, lat.length), 2);
    const slow = bucketsBefore && bucketsAfter ? { answers_over_25ms: over(25), answers_over_100ms: over(100), appends_over_25ms: shareOver(bucketsBefore.appends, bucketsAfter.appends, '0.025'), appends_over_100ms: shareOver(bucketsBefore.appends, bucketsAfter.appends, '0.1') } : undefined;
    const edgeThread = bucketsBefore && bucketsAfter
      ? { loop_delay_p99_ms: round(bucketsAfter.loopP99 * 1000), loop_delay_max_ms: round(bucketsAfter.loopMax * 1000), gc_ms_per_s: Object.fromEntries([...bucketsAfter.gc].map(([k, v]) => [k, round((1000 * (v - (bucketsBefore.gc.get(k) ?? 0))) / elapsed)])) }
      : undefined;
    if (slow) log(`${label} half_paced: answers over 25 ms ${slow.answers_over_25ms}% (over 100 ms ${slow.answers_over_100ms}%); inbox appends over 25 ms ${slow.appends_over_25ms}% (over 100 ms ${slow.appends_over_100ms}%)`);
    if (edgeThread) log(`${label} half_paced: edge thread event-loop delay p99 ${edgeThread.loop_delay_p99_ms} ms, max ${edgeThread.loop_delay_max_ms} ms; GC ms per s ${JSON.stringify(edgeThread.gc_ms_per_s)}`);
    const e2eMs = e2e ? await e2e.finish() : undefined;
    if (e2eMs) log(`${label} half_paced: 2xx answer -> event readable (read_committed) p50=${e2eMs.p50} p99=${e2eMs.p99} max=${e2eMs.max} ms over ${e2eMs.count} events (${e2eMs.missing} not read within 10 s)`);
    const step: Step = {
      e2e_ms: e2eMs,
      ...(slow ? { slow_share: slow } : {}),
      ...(edgeThread ? { edge_thread: edgeThread } : {}),
      phase: 'half_paced', connections: peak, overall_rate: rate, seconds: round(elapsed), sent, ok_2xx: ok, non_2xx: non2xx, errors, timeouts: Math.max(0, total - finished),
      status_codes: codes, rps_2xx: round(ok / elapsed, 1), zero_error: non2xx === 0 && errors === 0 && finished === total && ok > 0, latency_ms: p,
    };
    log(`${label} half_paced rate=${rate}/s: ${step.rps_2xx} 2xx/s, 2xx=${ok} non2xx=${non2xx} errors=${errors} p50=${p.p50} p99=${p.p99} max=${p.max} ms, ${peak} connections used`);
    return step;
  }

  const steps: Step[] = [];
  log(`${label}: ${body.length} B body, ${url}`);
  steps.push(await cannon('warmup', connections[0] ?? 16, warmupSeconds));
  for (const c of connections) {
    await sleep(1500);
    steps.push(await cannon('max', c, stepSeconds));
  }
  let best = steps.filter((s) => s.phase === 'max' && s.zero_error).sort((a, b) => b.rps_2xx - a.rps_2xx)[0];
  // Nothing was error-free: step down the concurrency until something is.
  for (let c = Math.floor((connections[0] ?? 16) / 2); !best && c >= 1; c = Math.floor(c / 2)) {
    await sleep(1500);
    const s = await cannon('max', c, stepSeconds);
    steps.push(s);
    if (s.zero_error) best = s;
  }
  let half: Step | undefined;
  let halfPaced: Step | undefined;
  if (best) {
    const rate = fixedHalfRate ?? Math.max(1, Math.floor(best.rps_2xx / 2));
    await sleep(1500);
    half = await cannon('half', Math.min(64, rate), halfSeconds, rate);
    steps.push(half);
    await sleep(1500);
    halfPaced = await paced(rate, halfSeconds);
    steps.push(halfPaced);
  }
  // autocannon stops at the deadline with requests still in flight on each connection: the
  // system got them (and may well publish them) but their answers are not counted.
  const totals = steps.reduce(
    (t, s) => ({
      sent: t.sent + s.sent, ok_2xx: t.ok_2xx + s.ok_2xx, non_2xx: t.non_2xx + s.non_2xx, status_503: t.status_503 + (s.status_codes['503'] ?? 0), errors: t.errors + s.errors + s.timeouts,
      unanswered_at_stop: t.unanswered_at_stop + Math.max(0, s.sent - s.ok_2xx - s.non_2xx - s.errors - s.timeouts),
    }),
    { sent: 0, ok_2xx: 0, non_2xx: 0, status_503: 0, errors: 0, unanswered_at_stop: 0 },
  );
  process.stdout.write(
    `${JSON.stringify({
      label,
      url,
      body_bytes: body.length,
      orders: distinctOrders ? 'distinct' : 'same',
      max_zero_error_rps: best?.rps_2xx ?? null,
      max_at_connections: best?.connections ?? null,
      max_step_processed_rps: best?.processed_rps ?? null,
      max_step_backlog_at_end: best?.backlog_at_end ?? null,
      half_rate: half?.overall_rate ?? null,
      half_autocannon: half ? { p50_ms: half.latency_ms.p50, p99_ms: half.latency_ms.p99, raw_p50_ms: half.raw_latency_ms?.p50, raw_p99_ms: half.raw_latency_ms?.p99, zero_error: half.zero_error, rps_2xx: half.rps_2xx } : null,
      half_paced: halfPaced ? { p50_ms: halfPaced.latency_ms.p50, p99_ms: halfPaced.latency_ms.p99, max_ms: halfPaced.latency_ms.max, zero_error: halfPaced.zero_error, rps_2xx: halfPaced.rps_2xx, e2e_ms: halfPaced.e2e_ms ?? null, slow_share: halfPaced.slow_share ?? null, edge_thread: halfPaced.edge_thread ?? null } : null,
      totals,
      loadgen_cpu_s: round((process.cpuUsage().user + process.cpuUsage().system) / 1e6),
      steps,
    })}\n`,
  );
}

// ---- count -----------------------------------------------------------------------------------

async function count(): Promise<void> {
  const topic = process.env.COUNT_TOPIC ?? '';
  const expect = Number(process.env.COUNT_EXPECT ?? 0);
  const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
  if (!topic) throw new Error('COUNT_TOPIC is required');
  const kafka = new Kafka({ clientId: 'bench-ingest-count', brokers, logLevel: logLevel.NOTHING, ...(process.env.KAFKA_SASL_USERNAME ? { sasl: { mechanism: 'scram-sha-256' as const, username: process.env.KAFKA_SASL_USERNAME, password: process.env.KAFKA_SASL_PASSWORD ?? '' } } : {}) });
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  const highWatermarks = Object.fromEntries(offsets.map((o) => [o.partition, Number(o.high)]));
  if (process.env.COUNT_MODE === 'offsets') {
    // A fresh topic written without transactions: every offset is one record.
    await admin.disconnect();
    const records = offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
    process.stdout.write(`${JSON.stringify({ topic, records, by: 'high-low watermarks', expected: expect, high_watermarks: highWatermarks })}\n`);
    return;
  }
  const groupId = `bench-ingest-count-${Date.now()}-${randomBytes(3).toString('hex')}`;
  const consumer = kafka.consumer({ groupId, maxBytes: 64 * 1024 * 1024 });
  let records = 0;
  const ids = new Set<string>();
  const keys = new Set<string>();
  let last = Date.now();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        records++;
        const id = m.headers?.['ionflux.event_id'];
        if (id) ids.add(id.toString());
        if (m.key && keys.size < 10) keys.add(m.key.toString());
      }
      last = Date.now();
    },
  });
  const started = Date.now();
  for (;;) {
    await sleep(250);
    const idle = Date.now() - last;
    if (records >= expect && records > 0 && idle > 2000) break;
    if (records === 0 && Date.now() - started > 10_000) break;
    if (Date.now() - started > 90_000) break;
  }
  await consumer.disconnect();
  await admin.deleteGroups([groupId]).catch(() => undefined);
  await admin.disconnect();
  process.stdout.write(`${JSON.stringify({ topic, records, distinct_event_ids: ids.size, keys: [...keys], expected: expect, high_watermarks: highWatermarks })}\n`);
}

// ---- main ------------------------------------------------------------------------------------

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'payload') {
  const [fixture, out] = args;
  if (!fixture || !out) throw new Error('usage: load.ts payload <fixture.json> <out.json>');
  const body = makePayload(readFileSync(fixture), num('BENCH_PAYLOAD_BYTES', 2048));
  writeFileSync(out, body);
  log(`payload: ${body.length} B -> ${out}`);
} else if (cmd === 'run') {
  await run();
} else if (cmd === 'count') {
  await count();
} else {
  process.stderr.write('usage: load.ts payload <fixture> <out> | run | count\n');
  process.exit(2);
}

import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { uid } from '../helpers/infra.ts';
import { startIngester, type RunningIngester } from '../helpers/ingester.ts';
import { loadFixture, shopifyHeaders } from '../helpers/sign.ts';

const SECRET = `shpss_${randomBytes(16).toString('hex')}`;
const ORDER = loadFixture('shopify', 'orders-create');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

/** Resident memory of a process, from /proc (what the kernel really gives it, heap or not). */
const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

// RELIABILITY item 26: thousands of slow-body connections, memory bounded, signed deliveries still accepted.
describe('ingester under a flood of slow bodies (item 26)', () => {
  const ws = uid('ws');
  const shop = `${uid('shop')}.myshopify.com`;
  let ingester: RunningIngester;

  beforeAll(async () => {
    expect((await runCli(['link', 'shopify', shop, ws])).code).toBe(0);
    // Every limit at its default: INGESTER_MAX_BUFFERED_BYTES 64 MiB, body limit 2 MiB, 4096
    // connections, 15 s per request.
    ingester = await startIngester({ SHOPIFY_API_SECRET: SECRET });
  }, 180_000);
  afterAll(async () => {
    await ingester?.stop();
  }, 60_000);

  const signed = () => ingester.post('/webhooks/shopify', ORDER, shopifyHeaders({ topic: 'orders/create', shop, secret: SECRET, body: ORDER, webhookId: randomUUID() }));

  it('2,000 connections trickling unsigned bodies: RSS stays within the byte budget plus per-connection costs, signed deliveries get 200', async () => {
    for (let i = 0; (await signed()).status !== 200; i++) {
      if (i > 60) throw new Error('the link never reached the ingester');
      await sleep(250);
    }
    for (let i = 0; i < 50; i++) expect((await signed()).status).toBe(200); // warm up before measuring
    const pid = ingester.pid();
    const baseline = rss(pid);

    // Each flood connection declares a 2,000,000-byte body (under the 2 MiB limit), carries
    // signature headers (so it is not refused before its body) and sends 8 KiB every 250 ms; one
    // that is answered or closed is replaced at once, as an attacker would. Unbounded, they would
    // hold 2,000 x 2 MB = 4 GB; 8 s of trickling offers about 500 MiB.
    const CONNECTIONS = 2000;
    const chunk = Buffer.alloc(8 * 1024, 0x20);
    const head = (id: string) => Buffer.from(`POST /webhooks/shopify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n` +
      `X-Shopify-Hmac-Sha256: ${randomBytes(32).toString('base64')}\r\nX-Shopify-Topic: orders/create\r\nX-Shopify-Shop-Domain: ${shop}\r\nX-Shopify-Webhook-Id: ${id}\r\n\r\n`);
    const open = new Set<Socket>();
    const answers = new Map<string, number>();
    let flooding = true;
    let opened = 0;
    const spawn = () => {
      if (!flooding) return;
      opened++;
      const s = connect(ingester.port, '127.0.0.1');
      s.write(head(randomUUID())); // queued ahead of any trickled byte
      s.setNoDelay(true);
      s.once('data', (d: Buffer) => {
        const status = /^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'))?.[1] ?? 'other';
        answers.set(status, (answers.get(status) ?? 0) + 1);
      });
      s.on('error', () => undefined);
      s.on('close', () => {
        open.delete(s);
        setImmediate(spawn);
      });
      open.add(s);
    };
    for (let i = 0; i < CONNECTIONS; i++) {
      spawn();
      if (i % 200 === 199) await sleep(50);
    }
    const trickle = setInterval(() => {
      for (const s of open) if (s.writable && s.writableLength < 64 * 1024) s.write(chunk);
    }, 250);

    const samples: number[] = [];
    const statuses: number[] = [];
    try {
      for (let t = 0; t < 16; t++) {
        await sleep(500);
        samples.push(rss(pid));
        statuses.push((await signed()).status);
      }
    } finally {
      flooding = false;
      clearInterval(trickle);
      for (const s of open) s.destroy();
    }
    const peak = Math.max(...samples);
    const report = { baseline_mib: +(baseline / MiB).toFixed(1), peak_mib: +(peak / MiB).toFixed(1), growth_mib: +((peak - baseline) / MiB).toFixed(1), connections_opened: opened, answers: Object.fromEntries(answers), signed: statuses };
    console.log(JSON.stringify(report));

    expect(statuses.every((s) => s === 200), JSON.stringify(report)).toBe(true);
    // The budget was really under pressure: slow readers were evicted (503) to make room.
    expect(answers.get('503') ?? 0).toBeGreaterThan(0);
    // Bound: the 64 MiB byte budget, about 48 KiB per open connection (socket, HTTP parser,
    // request and response objects, read buffers) for 2,000, and 96 MiB for the garbage collector
    // to run behind the churn of evicted connections (freed chunks go back to the OS lazily):
    // about 254 MiB over the baseline. Measured: ~155-160 MiB; with the budget lifted the same
    // flood grew ~520 MiB in 8 s and kept growing (2,000 x 2 MB = 4 GB declared).
    const bound = 64 * MiB + CONNECTIONS * 48 * 1024 + 96 * MiB;
    expect(peak - baseline, JSON.stringify(report)).toBeLessThan(bound);
  }, 120_000);
});

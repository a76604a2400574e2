import type { AddressInfo } from 'node:net';
import { createServer, type RequestListener, type Server } from 'node:http';
import express, { type Express } from 'express';
import type { Registry } from 'prom-client';
import type { Bus } from './bus/types.ts';
import { withDeadline } from './deadline.ts';

/** A named readiness probe: true (or `{ ok: true }`) when the dependency answers; `detail` says why not. */
export type ReadinessCheck = () => Promise<boolean | { ok: boolean; detail?: string }>;

type Checked = { name: string; ok: boolean; detail?: string };

async function runCheck(name: string, check: ReadinessCheck): Promise<Checked> {
  try {
    const r = await withDeadline(check(), 2000, () => new Error('no answer within 2 s'));
    return typeof r === 'boolean' ? { name, ok: r } : { name, ok: r.ok, ...(r.ok || !r.detail ? {} : { detail: r.detail }) };
  } catch (e) {
    return { name, ok: false, detail: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * Adds `/healthz` (the process is alive), `/readyz` and `/metrics` (Prometheus) to an express app.
 * `/readyz` is 503 `not_ready` unless every check answers; a `degraded` check that does not answer
 * leaves it 200 but says `degraded` (what the process can still do without it, it does). Both name
 * each dependency `ok` or `unavailable`, and `details` says why one is not (sealed, unreachable, ...).
 */
export function mountOpsRoutes(app: Express, opts: { metrics: Registry; checks: Record<string, ReadinessCheck>; degraded?: Record<string, ReadinessCheck> }): void {
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const [required, optional] = await Promise.all([
      Promise.all(Object.entries(opts.checks).map(([name, check]) => runCheck(name, check))),
      Promise.all(Object.entries(opts.degraded ?? {}).map(([name, check]) => runCheck(name, check))),
    ]);
    const all = [...required, ...optional];
    const checks = Object.fromEntries(all.map((c) => [c.name, c.ok ? 'ok' : 'unavailable']));
    const details = Object.fromEntries(all.filter((c) => c.detail).map((c) => [c.name, c.detail]));
    const ready = required.every((c) => c.ok);
    const status = !ready ? 'not_ready' : optional.every((c) => c.ok) ? 'ready' : 'degraded';
    res.status(ready ? 200 : 503).json({ status, checks, ...(Object.keys(details).length ? { details } : {}) });
  });
  app.get('/metrics', async (_req, res) => {
    res.set('content-type', opts.metrics.contentType).send(await opts.metrics.metrics());
  });
}

/** Limits of a public listener: how long a client may take to send its request, and how many sockets it may hold. */
export interface ListenLimits {
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxConnections?: number;
}

/**
 * Serves an express app (or any request listener) on host:port (127.0.0.1 unless given) and
 * resolves once bound; port 0 picks a free port. With `limits`, a request whose headers or whole
 * body do not arrive in time is answered 408 and its socket closed (checked every second, not
 * node's default 30 s), and sockets over maxConnections are closed on accept.
 */
export async function listen(app: Express | RequestListener, port: number, host = '127.0.0.1', limits: ListenLimits = {}): Promise<{ server: Server; url: string; close: () => Promise<void> }> {
  const timeouts = limits.requestTimeoutMs !== undefined || limits.headersTimeoutMs !== undefined
    ? { headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: 1000 }
    : {};
  const server = createServer(timeouts, app as RequestListener);
  if (limits.maxConnections !== undefined) server.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    server,
    url: `http://${host}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

/** Kafka answers when the bus can describe the cluster. */
export function busReadiness(bus: Pick<Bus, 'healthy'>): ReadinessCheck {
  return () => bus.healthy();
}

/** The schema registry answers its subjects listing. */
export function registryReadiness(url: string): ReadinessCheck {
  return async () => (await fetch(`${url}/subjects`, { signal: AbortSignal.timeout(2000) }).catch(() => null))?.ok ?? false;
}

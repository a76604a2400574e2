import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A pass-through in front of a vendor simulator that can hold OAuth code exchanges: while held,
 * each exchange request waits (counted in `arrived`) until `release()`, then goes on to the
 * simulator unchanged. Two callbacks fired together then both have their code exchanged before
 * either gets its token, with no sleeps: the race on what happens after the exchange is certain.
 */
export interface ExchangeGate {
  url: string;
  /** Code exchanges that reached the gate since `hold()`. */
  readonly arrived: number;
  /** Resolves once `n` code exchanges have reached the gate. */
  reached(n: number): Promise<void>;
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

const readBody = (req: IncomingMessage) => new Promise<Buffer>((resolve, reject) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject);
});

/** `isExchange` tells a code exchange (not a refresh) from the method, path and body of a request. */
export async function startExchangeGate(target: string, isExchange: (method: string, path: string, body: string) => boolean): Promise<ExchangeGate> {
  let held: Promise<void> | null = null;
  let open = () => undefined as void;
  let arrived = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      if (held && isExchange(req.method ?? 'GET', req.url ?? '/', body.toString())) {
        arrived++;
        for (const w of waiters.filter((x) => arrived >= x.n)) w.resolve();
        await held;
      }
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([k, v]) => typeof v === 'string' && !['host', 'content-length', 'connection'].includes(k))) as Record<string, string>;
      const up = await fetch(`${target}${req.url}`, { method: req.method, headers, body: body.length ? new Uint8Array(body) : undefined, redirect: 'manual' });
      const out = Buffer.from(await up.arrayBuffer());
      const back = Object.fromEntries([...up.headers].filter(([k]) => !['content-length', 'content-encoding', 'transfer-encoding', 'connection'].includes(k)));
      res.writeHead(up.status, back).end(out);
    })().catch((e: unknown) => res.writeHead(502).end(String(e)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get arrived() {
      return arrived;
    },
    reached: (n) => (arrived >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }))),
    hold() {
      arrived = 0;
      held = new Promise<void>((r) => (open = r));
    },
    release() {
      open();
      held = null;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

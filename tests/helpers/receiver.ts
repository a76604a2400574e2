import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface Delivery {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/**
 * A real local HTTP server standing in for a customer's webhook endpoint. Each path can be given
 * a script of answers (status, headers; `hold`: answered once it settles, a slow endpoint) and a
 * hook that runs when a request arrives.
 */
type Answer = { status: number; headers?: Record<string, string>; hold?: Promise<unknown> };
export async function startReceiver() {
  const deliveries: Delivery[] = [];
  const scripts = new Map<string, Answer[]>();
  const hooks = new Map<string, () => void>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      deliveries.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString() });
      hooks.get(path)?.();
      const next = scripts.get(path)?.shift() ?? { status: 200 };
      const answer = () => void res.writeHead(next.status, { 'content-type': 'application/json', ...next.headers }).end('{"ok":true}');
      if (next.hold) void next.hold.finally(answer);
      else answer();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  return {
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    deliveries,
    count: (path: string) => deliveries.filter((d) => d.path === path).length,
    script: (path: string, answers: Answer[]) => void scripts.set(path, answers),
    onRequest: (path: string, fn: () => void) => void hooks.set(path, fn),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

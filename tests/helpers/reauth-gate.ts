/**
 * The test side of TIKTOK_TEST_REAUTH_GATE_URL and SHOPIFY_TEST_REAUTH_GATE_URL: the service POSTs
 * `{workspace}` right before it marks a connection needs_reauthorization; while held, the marking
 * waits for `release()`.
 */
export async function startReauthGate() {
  const { createServer } = await import('node:http');
  let held: Promise<void> | null = null;
  let open = () => undefined as void;
  const arrived = new Set<string>();
  const waiters: { ws: string; resolve: () => void }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString())).on('end', () => {
      void (async () => {
        const ws = (JSON.parse(body) as { workspace: string }).workspace;
        arrived.add(ws);
        for (const w of waiters.filter((x) => x.ws === ws)) w.resolve();
        if (held) await held;
        res.writeHead(204).end();
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}/`,
    hold: () => void (held = new Promise<void>((r) => (open = r))),
    release: () => {
      open();
      held = null;
    },
    reached: (ws: string) => (arrived.has(ws) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ ws, resolve }))),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

import type { KafkaTable } from '../../shared/bus/table/table.ts';
import { openWorkspaceConnectors, wsConnectorKey } from '../../shared/commands/state.ts';
import type { BaseEnv } from '../../shared/config.ts';
import { UsageError } from './args.ts';
import { cliContext } from './context.ts';
import { emit } from './integrations.ts';

/** `--timeout` in seconds (default 600), or a usage error. */
export function timeoutSeconds(raw: string | undefined, usage: string): number {
  const s = Number(raw ?? 600);
  if (!Number.isFinite(s) || s <= 0) throw new UsageError(`--timeout must be a number of seconds\nusage: ${usage}`);
  return s;
}

/**
 * What `ionflux connect shopify|tiktok` share: print the hub's authorization URL (the service
 * redirects it to the vendor's OAuth page), then wait until the OAuth callback marks the workspace
 * connected in the workspace-connectors table, after this command began. Exit 0 when connected,
 * 1 on timeout.
 */
export async function awaitAuthorization<C>(o: {
  connector: string;
  /** The service that serves the URL, and the settings that place it (for the not-running warning). */
  service: string;
  settings: string;
  env: BaseEnv;
  /** The vendor, as the waiting line names it. */
  vendor: string;
  baseUrl: string;
  url: string;
  workspace: string;
  timeoutS: number;
  json: boolean | undefined;
  /** What is printed with the URL (JSON fields and text). */
  intro: { fields: Record<string, unknown>; text: string };
  openConnections: (ctx: ReturnType<typeof cliContext>) => Promise<KafkaTable<C>>;
  /** The workspace's connection once it is the one asked for: its JSON fields and text, or null to wait on. */
  connected: (c: C | undefined) => { fields: Record<string, unknown>; text: string } | null;
  timeoutText: string;
}): Promise<number> {
  const ctx = cliContext(o.env);
  const [table, connections] = await Promise.all([openWorkspaceConnectors(ctx), o.openConnections(ctx)]);
  try {
    const key = wsConnectorKey(o.workspace, o.connector);
    const started = Date.now();
    const since = Date.parse(table.get(key)?.updated_at ?? '') || 0;
    emit(o.json, { connector: o.connector, workspace: o.workspace, ...o.intro.fields, authorization_url: o.url, waiting_s: o.timeoutS }, `${o.intro.text}:\n  ${o.url}\nWaiting up to ${o.timeoutS} s for ${o.vendor}'s answer...`);
    const reachable = await fetch(`${o.baseUrl}/healthz`, { signal: AbortSignal.timeout(3000) }).then((r) => r.ok, () => false);
    if (!reachable) process.stderr.write(`warning: ${o.service} does not answer at ${o.baseUrl} (is it running? ${o.settings})\n`);
    while (Date.now() - started < o.timeoutS * 1000) {
      const e = table.get(key);
      const at = Date.parse(e?.updated_at ?? '') || 0;
      const done = e?.connection === 'connected' && at > since && at >= started - 1000 ? o.connected(connections.get(o.workspace)) : null;
      if (done) {
        emit(o.json, { connector: o.connector, workspace: o.workspace, connection: 'connected', ...done.fields }, done.text);
        return 0;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    process.stderr.write(`${o.timeoutText} within ${o.timeoutS} s; run it again to get a fresh link\n`);
    return 1;
  } finally {
    await Promise.all([table.close(), connections.close()]);
    await ctx.close();
  }
}

import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { isReservedSource, topics } from '../../shared/bus/topics.ts';
import { parseEnv, port } from '../../shared/config.ts';
import { assertSegment, assertWorkspaceId, NO_UNDERSCORE_SEGMENT } from '../../shared/ids.ts';
import { linkKey, openLinks, type Link } from '../../shared/links.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { endpointSecretPath } from '../webhook-ingester/secrets.ts';
import { vendors } from '../webhook-ingester/vendors/index.ts';
import { overlapHours, parse, UsageError } from './args.ts';
import { cliContext } from './context.ts';
import { cliConnectors } from './integrations.ts';
import { grantWorkspaceSources } from './principals.ts';
import type { CliCommand } from './main.ts';

const USAGE = 'ionflux endpoints create --workspace <id> --source <name> | endpoints rotate <endpoint-id> [--overlap-hours <h>]';

const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

/** Where vendors reach the ingester: INGESTER_PUBLIC_URL (behind a proxy or tunnel), else the local INGESTER_PORT. */
const ingesterEnv = z.object({ INGESTER_PUBLIC_URL: z.url().optional(), INGESTER_PORT: port(8080) });

/**
 * Standard Webhooks endpoints for Zapier, n8n or any tool. `create` prints the URL and the
 * signing secret once (only the secret store keeps it); `rotate` issues a new secret and keeps
 * the old one valid for an overlap window (default 24 h).
 */
export const endpointsCommand: CliCommand = {
  summary: 'endpoints create --workspace <id> --source <name> | rotate <endpoint-id>   signed generic webhook endpoints',
  async run(args) {
    const [sub, ...rest] = args;
    const { values, positionals } = parse(rest, { workspace: { type: 'string' }, source: { type: 'string' }, 'overlap-hours': { type: 'string' } }, USAGE);
    const ctx = cliContext();
    const store = createSecretStore(ctx.env);
    try {
      if (sub === 'create') {
        if (!values.workspace || !values.source) throw new UsageError(`usage: ${USAGE}`);
        const env = parseEnv(ingesterEnv); // before anything is stored: the secret is printed only once
        const workspaceId = assertWorkspaceId(values.workspace);
        const source = assertSegment('source', values.source, NO_UNDERSCORE_SEGMENT);
        // Vendor sources, topic kinds, and every command service (its outcomes live under its name).
        const connectors = await cliConnectors();
        if (isReservedSource(source) || ['platform', ...Object.values(vendors).map((v) => v.source), ...connectors.keys()].includes(source)) throw new UsageError(`source "${source}" is reserved`);
        const id = `ep_${randomBytes(8).toString('hex')}`;
        const secret = newSecret();
        await store.put(endpointSecretPath(id), { secret }, { labels: { workspace: workspaceId, source } });
        const link: Link = { workspaceId, source, linkedAt: new Date().toISOString() };
        try {
          await ctx.bus.publish({ topic: topics.state('links'), key: linkKey('generic', id), value: Buffer.from(JSON.stringify(link)) });
        } catch (e) {
          // No endpoint without its link: the secret goes too, so nothing is left half made.
          await store.delete(endpointSecretPath(id)).catch(() => undefined);
          process.stderr.write(`endpoints create failed: the link could not be published (${(e as Error).message}); nothing created\n`);
          return 1;
        }
        // From here the endpoint exists: its secret is shown whatever happens next.
        const base = (env.INGESTER_PUBLIC_URL ?? `http://127.0.0.1:${env.INGESTER_PORT}`).replace(/\/+$/, '');
        process.stdout.write(`${JSON.stringify({ endpoint_id: id, url: `${base}/webhooks/generic/${id}`, secret, workspace: workspaceId, source })}\n`);
        process.stderr.write('The secret is shown only this once; sign deliveries with it (Standard Webhooks).\n');
        try {
          // The ingester may now write ionflux.<source>.ws_<workspace>.*, the workspace's agents read it.
          await grantWorkspaceSources(ctx, connectors.values());
        } catch (e) {
          process.stderr.write(`endpoints create: the endpoint exists, but the ACLs for its topics were not updated (${(e as Error).message}); run \`ionflux principals sync\`\n`);
          return 1;
        }
        return 0;
      }
      if (sub === 'rotate') {
        const id = positionals[0];
        if (!id) throw new UsageError(`usage: ${USAGE}`);
        const links = await openLinks(ctx);
        const known = links.get(linkKey('generic', id));
        await links.close();
        const current = await store.get(endpointSecretPath(id));
        if (!known || !current?.value.secret) throw new UsageError(`no endpoint ${id}`);
        const hours = overlapHours(values['overlap-hours']);
        const secret = newSecret();
        await store.put(endpointSecretPath(id), { secret, previous_secret: current.value.secret, previous_valid_until: new Date(Date.now() + hours * 3600_000).toISOString() }, { labels: current.metadata.labels });
        process.stdout.write(`${JSON.stringify({ endpoint_id: id, secret, previous_valid_for_hours: hours })}\n`);
        return 0;
      }
      throw new UsageError(`usage: ${USAGE}`);
    } finally {
      await store.close?.();
      await ctx.close();
    }
  },
};

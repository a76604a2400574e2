import { accountProblem, linkKey, openLinks, type Link } from '../../shared/links.ts';
import { isWorkspaceId } from '../../shared/ids.ts';
import { topics } from '../../shared/bus/topics.ts';
import { UsageError } from './args.ts';
import { cliContext } from './context.ts';
import type { CliCommand } from './main.ts';

const LINK_USAGE = 'ionflux link <shopify|tiktok|whatsapp|email> <account> <workspace-id>';

/** `ionflux link shopify acme.myshopify.com acme`: deliveries from that account go to that workspace. */
export const linkCommand: CliCommand = {
  summary: `${LINK_USAGE.slice('ionflux '.length)}   send a vendor account's webhooks to a workspace`,
  async run(args) {
    if (args.length !== 3) throw new UsageError(`usage: ${LINK_USAGE}`);
    const [vendor, account, workspaceId] = args as [string, string, string];
    const problem = accountProblem(vendor, account);
    if (problem || vendor === 'generic') throw new UsageError(`${problem ?? 'generic endpoints are linked by `ionflux endpoints create`'}\nusage: ${LINK_USAGE}`);
    if (!isWorkspaceId(workspaceId)) throw new UsageError(`"${workspaceId}" is not a valid workspace id (lowercase letters, digits and -)\nusage: ${LINK_USAGE}`);
    const ctx = cliContext();
    try {
      const link: Link = { workspaceId, linkedAt: new Date().toISOString() };
      await ctx.bus.publish({ topic: topics.state('links'), key: linkKey(vendor, account), value: Buffer.from(JSON.stringify(link)) });
      process.stdout.write(`linked ${vendor} ${account} -> workspace ${workspaceId}\n`);
      return 0;
    } finally {
      await ctx.close();
    }
  },
};

/** `ionflux links [--json]`: every vendor account and the workspace it belongs to. */
export const linksCommand: CliCommand = {
  summary: 'links [--json]   list vendor accounts and their workspaces',
  async run(args) {
    const ctx = cliContext();
    const table = await openLinks(ctx);
    try {
      const rows = table.entries().sort(([a], [b]) => a.localeCompare(b));
      for (const [key, link] of rows) {
        const [vendor, ...account] = key.split(':');
        const row = { vendor, account: account.join(':'), workspace: link.workspaceId, source: link.source, linked_at: link.linkedAt };
        process.stdout.write(args.includes('--json') ? `${JSON.stringify(row)}\n` : `${row.vendor}\t${row.account}\t${row.workspace}${row.source ? `\t(source ${row.source})` : ''}\n`);
      }
      if (rows.length === 0 && !args.includes('--json')) process.stdout.write('no links yet: ionflux link <vendor> <account> <workspace-id>\n');
      return 0;
    } finally {
      await table.close();
      await ctx.close();
    }
  },
};

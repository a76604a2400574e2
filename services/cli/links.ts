import { createPublicKey } from 'node:crypto';
import { accountProblem, linkKey, openLinks, type Link } from '../../shared/links.ts';
import { isWorkspaceId } from '../../shared/ids.ts';
import { topics } from '../../shared/bus/topics.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { sendgridAccountKeyPath } from '../webhook-ingester/secrets.ts';
import { overlapHours, parse, UsageError } from './args.ts';
import { cliContext } from './context.ts';
import type { CliCommand } from './main.ts';

const LINK_USAGE = 'ionflux link <shopify|tiktok|whatsapp|email> <account> <workspace-id> [--verification-key <key> [--overlap-hours <h>]]';

/**
 * `ionflux link shopify acme.myshopify.com acme`: deliveries from that account go to that workspace.
 * For `email`, `--verification-key` stores that SendGrid account's Signed Event Webhook public key
 * (base64, as SendGrid's console shows it): /webhooks/email/sendgrid/<account> verifies with it
 * alone. A new key keeps the old one valid for `--overlap-hours` (24).
 */
export const linkCommand: CliCommand = {
  summary: `${LINK_USAGE.slice('ionflux '.length)}   send a vendor account's webhooks to a workspace`,
  async run(argv) {
    const { values, positionals: args } = parse(argv, { 'verification-key': { type: 'string' }, 'overlap-hours': { type: 'string' } }, LINK_USAGE);
    if (args.length !== 3) throw new UsageError(`usage: ${LINK_USAGE}`);
    const [vendor, account, workspaceId] = args as [string, string, string];
    const key = values['verification-key'];
    if (key !== undefined && vendor !== 'email') throw new UsageError(`--verification-key is for email (SendGrid) accounts\nusage: ${LINK_USAGE}`);
    if (key !== undefined && !isEcPublicKey(key)) throw new UsageError('--verification-key is not an EC public key (base64 DER, as SendGrid shows it, or PEM)');
    const problem = accountProblem(vendor, account);
    if (problem || vendor === 'generic') throw new UsageError(`${problem ?? 'generic endpoints are linked by `ionflux endpoints create`'}\nusage: ${LINK_USAGE}`);
    if (!isWorkspaceId(workspaceId)) throw new UsageError(`"${workspaceId}" is not a valid workspace id (lowercase letters, digits and -)\nusage: ${LINK_USAGE}`);
    const hours = overlapHours(values['overlap-hours']); // refused before anything is stored
    const ctx = cliContext();
    try {
      if (key !== undefined) await storeVerificationKey(ctx.env, account, key.trim(), hours);
      const link: Link = { workspaceId, linkedAt: new Date().toISOString() };
      await ctx.bus.publish({ topic: topics.state('links'), key: linkKey(vendor, account), value: Buffer.from(JSON.stringify(link)) });
      process.stdout.write(`linked ${vendor} ${account} -> workspace ${workspaceId}\n`);
      return 0;
    } finally {
      await ctx.close();
    }
  },
};

function isEcPublicKey(key: string): boolean {
  try {
    const k = key.includes('BEGIN PUBLIC KEY') ? createPublicKey(key) : createPublicKey({ key: Buffer.from(key.trim(), 'base64'), format: 'der', type: 'spki' });
    return k.asymmetricKeyType === 'ec';
  } catch {
    return false;
  }
}

async function storeVerificationKey(env: Parameters<typeof createSecretStore>[0], account: string, key: string, overlapHours: number): Promise<void> {
  const store = createSecretStore(env);
  try {
    const path = sendgridAccountKeyPath(account);
    const current = (await store.get(path))?.value.secret;
    if (current === key) {
      // A re-run (say after the link's publish failed): the overlap the first run gave the previous key stands.
      process.stdout.write(`the verification key of SendGrid account ${account} is stored already\n`);
      return;
    }
    const previous: Record<string, string> = current ? { previous_secret: current, previous_valid_until: new Date(Date.now() + overlapHours * 3600_000).toISOString() } : {};
    await store.put(path, { secret: key, ...previous }, { labels: { vendor: 'sendgrid', account } });
    process.stdout.write(`stored the verification key of SendGrid account ${account}${current ? ` (the previous one stays valid ${overlapHours} h)` : ''}\n`);
  } finally {
    await store.close?.();
  }
}

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

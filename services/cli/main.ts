import { ConfigError } from '../../shared/config.ts';
import { HubError } from '../../shared/errors.ts';
import { approvalsCommand } from './approvals.ts';
import { connectCommand, disconnectCommand, webhooksCommand, workspaceCommand } from './connect.ts';
import { dlqCommand } from './dlq.ts';
import { emailCommand } from './email.ts';
import { endpointsCommand } from './endpoints.ts';
import { integrationsCommand } from './integrations.ts';
import { linkCommand, linksCommand } from './links.ts';
import { principalsCommand } from './principals.ts';
import { schemasCommand } from './schemas.ts';
import { tailCommand } from './tail.ts';

/** Each command: a one-line summary for `ionflux help`, and its handler over the remaining args. */
export interface CliCommand {
  summary: string;
  run(args: string[]): Promise<number>;
}

const commands: Record<string, CliCommand> = {
  tail: tailCommand,
  schemas: schemasCommand,
  link: linkCommand,
  links: linksCommand,
  endpoints: endpointsCommand,
  integrations: integrationsCommand,
  connect: connectCommand,
  disconnect: disconnectCommand,
  webhooks: webhooksCommand,
  workspace: workspaceCommand,
  approvals: approvalsCommand,
  dlq: dlqCommand,
  email: emailCommand,
  principals: principalsCommand,
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ionflux ${c.summary.startsWith(name) ? c.summary : `${name}  ${c.summary}`}`);
  return `usage:\n${lines.join('\n')}\n`;
}

const [name, ...rest] = process.argv.slice(2);
const command = name ? commands[name] : undefined;
if (!command) {
  process.stderr.write(name && name !== 'help' && name !== '--help' ? `unknown command: ${name}\n${usage()}` : usage());
  process.exit(name && name !== 'help' && name !== '--help' ? 2 : 0);
}
try {
  process.exitCode = await command.run(rest);
} catch (e) {
  if (e instanceof ConfigError || e instanceof HubError || (e instanceof Error && e.name === 'UsageError')) {
    process.stderr.write(`ionflux ${name}: ${e.message}\n`);
    process.exitCode = e.name === 'UsageError' ? 2 : 1;
  } else throw e;
}

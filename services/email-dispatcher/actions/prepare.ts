import type { Mailbox } from '../../../shared/connectors/catalog/email.ts';
import type { ActionContext } from '../../../shared/connectors/types.ts';
import { HubError } from '../../../shared/errors.ts';
import { resolveAttachments, type AttachmentRef } from '../attachments.ts';
import { senderFor } from '../compose.ts';
import type { EmailDeps } from '../deps.ts';
import { outboundAllowlist } from '../../../shared/net/outbound.ts';
import { checkHost, smtpPortOf } from '../hosts.ts';
import type { Provider, ResolvedAttachment } from '../providers/types.ts';

export interface Prepared {
  provider: Provider;
  from: Mailbox;
  attachments: ResolvedAttachment[];
  platform: boolean;
}

/**
 * What both actions do before the first unit: refuse a platform seal that is not this command's,
 * pick the provider from the resolved credentials (a workspace's own SMTP host must be public),
 * fix the sender, fetch the attachments once.
 */
export async function prepare(d: EmailDeps, ctx: ActionContext<{ from?: Mailbox; attachments?: AttachmentRef[]; platform_seal?: unknown }>): Promise<Prepared> {
  if (ctx.params.platform_seal !== undefined) {
    const sealed = d.sealer.verify(ctx.params as Record<string, unknown>);
    if (!sealed || sealed.command_id !== ctx.idempotencyKey || sealed.workspace_id !== ctx.workspaceId) {
      throw new HubError('invalid_platform_seal', 'platform_seal is set only by the dispatcher HTTP API with the platform token, for that command alone');
    }
  }
  const platformCredential = await d.platformCredential();
  const platform = platformCredential !== undefined && ctx.credentials.credential === platformCredential;
  // A workspace's own SMTP server must be public (or allowed), checked here with the URL's port and
  // again on each connection its transport opens, so a DNS answer changed since reaches nothing.
  const guarded = !platform && !d.attachments.allowPrivate;
  const provider = d.providerFor(ctx.credentials, guarded ? { smtpGuard: { allow: outboundAllowlist } } : {});
  if (!platform && provider.name === 'smtp') {
    const url = new URL(ctx.credentials.credential!);
    const problem = await checkHost(url.hostname, d.attachments.allowPrivate, smtpPortOf(url));
    if (problem) throw new HubError('smtp_host_forbidden', problem);
  }
  if (platform && provider.name === 'sendgrid') await d.onPlatformSendgrid?.(ctx.workspaceId);
  const from = senderFor(ctx.credentials.from ?? '', ctx.params.from);
  // Fetches (up to 30 s each) stop at the handover too; the caller then throws before any unit.
  const signal = ctx.handover ? AbortSignal.any([ctx.signal, ctx.handover]) : ctx.signal;
  const attachments = await resolveAttachments(ctx.params.attachments, { ...d.attachments, signal });
  return { provider, from, attachments, platform };
}

/** The provider a result is reported under when `prepare` did not run (or failed): the credentials name it. */
export const providerNameOf = (credentials: Record<string, string>): Provider['name'] => (credentials.provider === 'sendgrid' ? 'sendgrid' : 'smtp');

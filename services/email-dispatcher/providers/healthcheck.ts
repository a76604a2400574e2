import nodemailer from 'nodemailer';
import { z } from 'zod';
import { parseEnv } from '../../../shared/config.ts';
import { redactString } from '../../../shared/redact.ts';
import { providerEnvShape } from '../env.ts';
import { outboundAllowlist } from '../../../shared/net/outbound.ts';
import { checkHost, smtpPortOf } from '../hosts.ts';
import { guardedSocket } from './smtp.ts';

/**
 * Checks credentials against the provider without sending anything: SMTP connects, secures
 * (STARTTLS or TLS) and logs in; SendGrid must answer GET /v3/scopes with mail.send among them.
 */
export async function checkProvider(credentials: Record<string, string>, signal: AbortSignal): Promise<{ ok: boolean; detail?: string }> {
  const env = parseEnv(z.object({ ...providerEnvShape, EMAIL_ALLOW_PRIVATE_HOSTS: z.enum(['true', 'false']).default('false') }));
  const { provider, credential, from } = credentials;
  if (!from || !/@/.test(from)) return { ok: false, detail: 'from must be a sender address' };
  if (provider === 'smtp') {
    if (!credential || !/^smtps?:\/\//.test(credential)) return { ok: false, detail: 'credential must be an smtp:// or smtps:// URL' };
    const allowPrivate = env.EMAIL_ALLOW_PRIVATE_HOSTS === 'true';
    const url = new URL(credential);
    const host = await checkHost(url.hostname, allowPrivate, smtpPortOf(url));
    if (host) return { ok: false, detail: host };
    // The login goes to the checked address, as the dispatcher's sends do (no second resolution).
    const guard = allowPrivate ? {} : { getSocket: guardedSocket({ allow: outboundAllowlist }, 10_000) };
    const t = nodemailer.createTransport({ url: credential, requireTLS: env.EMAIL_SMTP_REQUIRE_TLS, tls: { rejectUnauthorized: env.EMAIL_SMTP_TLS_REJECT_UNAUTHORIZED }, connectionTimeout: 10_000, greetingTimeout: 10_000, ...guard });
    try {
      await Promise.race([t.verify(), new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('healthcheck timed out')), { once: true }))]);
      return { ok: true, detail: 'SMTP server accepted the connection and login' };
    } catch (e) {
      return { ok: false, detail: redactString(`SMTP: ${(e as Error).message}`).replaceAll(credential, '[REDACTED]') };
    } finally {
      t.close();
    }
  }
  if (provider === 'sendgrid') {
    if (!credential) return { ok: false, detail: 'credential must be a SendGrid API key' };
    try {
      const res = await fetch(`${env.SENDGRID_BASE_URL.replace(/\/$/, '')}/v3/scopes`, { headers: { authorization: `Bearer ${credential}` }, signal });
      const body = (await res.json().catch(() => ({}))) as { scopes?: string[] };
      if (res.status === 401) return { ok: false, detail: 'SendGrid refused the API key (401)' };
      if (!res.ok) return { ok: false, detail: `SendGrid answered ${res.status}` };
      return body.scopes?.includes('mail.send') ? { ok: true, detail: 'API key has mail.send' } : { ok: false, detail: 'the API key lacks the mail.send scope' };
    } catch (e) {
      return { ok: false, detail: redactString(`could not reach SendGrid: ${(e as Error).message}`) };
    }
  }
  return { ok: false, detail: 'provider must be smtp or sendgrid' };
}

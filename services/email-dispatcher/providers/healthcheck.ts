import nodemailer from 'nodemailer';
import { z } from 'zod';
import { parseEnv } from '../../../shared/config.ts';
import { redactString } from '../../../shared/redact.ts';
import { providerEnvShape } from '../env.ts';
import { checkHost } from '../hosts.ts';

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
    const host = await checkHost(new URL(credential).hostname, env.EMAIL_ALLOW_PRIVATE_HOSTS === 'true');
    if (host) return { ok: false, detail: host };
    const t = nodemailer.createTransport({ url: credential, requireTLS: env.EMAIL_SMTP_REQUIRE_TLS, tls: { rejectUnauthorized: env.EMAIL_SMTP_TLS_REJECT_UNAUTHORIZED }, connectionTimeout: 10_000, greetingTimeout: 10_000 });
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

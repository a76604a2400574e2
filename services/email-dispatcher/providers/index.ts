import { HubError } from '../../../shared/errors.ts';
import type { EmailDispatcherEnv } from '../env.ts';
import { sendgridProvider } from './sendgrid.ts';
import { smtpProvider, type SmtpGuard } from './smtp.ts';
import type { Provider } from './types.ts';

export type ProviderEnv = Pick<EmailDispatcherEnv, 'EMAIL_SMTP_REQUIRE_TLS' | 'EMAIL_SMTP_TLS_REJECT_UNAUTHORIZED' | 'EMAIL_SMTP_MAX_CONNECTIONS' | 'EMAIL_SMTP_TIMEOUT_MS' | 'SENDGRID_BASE_URL' | 'SENDGRID_TIMEOUT_MS'>;

/** How a provider reaches its server: a workspace's own SMTP server is connected to through a guard. */
export interface ProviderOptions {
  smtpGuard?: SmtpGuard;
}

/** The provider named by resolved credentials (`provider`, `credential`); throws `invalid_credentials` naming what is wrong. */
export function providerFor(credentials: Record<string, string>, env: ProviderEnv, o: ProviderOptions = {}): Provider {
  const { provider, credential } = credentials;
  if (!credential) throw new HubError('invalid_credentials', 'no email credential');
  if (provider === 'smtp') {
    if (!/^smtps?:\/\//.test(credential)) throw new HubError('invalid_credentials', 'an smtp provider needs an smtp:// or smtps:// URL as its credential');
    return smtpProvider(credential, { maxConnections: env.EMAIL_SMTP_MAX_CONNECTIONS, requireTls: env.EMAIL_SMTP_REQUIRE_TLS, rejectUnauthorized: env.EMAIL_SMTP_TLS_REJECT_UNAUTHORIZED, timeoutMs: env.EMAIL_SMTP_TIMEOUT_MS }, o.smtpGuard);
  }
  if (provider === 'sendgrid') return sendgridProvider(credential, { baseUrl: env.SENDGRID_BASE_URL, timeoutMs: env.SENDGRID_TIMEOUT_MS });
  throw new HubError('invalid_credentials', `provider must be smtp or sendgrid, not ${JSON.stringify(provider ?? '')}`);
}

/** The platform account from the environment, as credential fields; null when not configured. */
export function platformCredentials(env: Pick<EmailDispatcherEnv, 'EMAIL_PROVIDER' | 'EMAIL_SMTP_URL' | 'SENDGRID_API_KEY' | 'EMAIL_FROM'>): Record<string, string> | null {
  const credential = env.EMAIL_PROVIDER === 'smtp' ? env.EMAIL_SMTP_URL : env.SENDGRID_API_KEY;
  if (!credential || !env.EMAIL_FROM) return null;
  return { provider: env.EMAIL_PROVIDER, credential, from: env.EMAIL_FROM };
}

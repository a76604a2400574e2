import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { servicePrincipal } from '../../shared/security/principals.ts';

/**
 * The variables that make a process a service's own principal on the test broker, with its own
 * OpenBao token (`make test` provisions both: deploy/local/test.sh). For tests about what a
 * service may do; other tests run services as the admin (the inherited environment).
 */
export function serviceEnv(service: string): Record<string, string> {
  const kafka = process.env.IONFLUX_KAFKA_CREDENTIALS;
  const vault = process.env.IONFLUX_VAULT_TOKENS;
  if (!kafka || !vault) throw new Error('IONFLUX_KAFKA_CREDENTIALS / IONFLUX_VAULT_TOKENS are not set: run the suite with `make test`');
  const principal = servicePrincipal(service);
  return {
    KAFKA_SASL_MECHANISM: 'scram-sha-256',
    KAFKA_SASL_USERNAME: principal,
    KAFKA_SASL_PASSWORD: '', // empty counts as unset: the file is read instead of the admin's password
    KAFKA_SASL_PASSWORD_FILE: join(kafka, `${principal}.password`),
    VAULT_TOKEN: readFileSync(join(vault, `${principal}.token`), 'utf8').trim(),
  };
}

/**
 * Secret scrubbing shared by logs, dead letters and error texts. Two nets: keys whose name
 * says "secret" are masked wherever they sit, and any value registered as a secret (every
 * value the SecretStore hands out, every configured key) is masked inside any string.
 */
export const REDACTED = '[REDACTED]';

const SECRET_KEY = /(authorization|token|secret|password|passwd|api[-_]?key|apikey|cookie|credential|private[-_]?key|hmac|signature)/i;
const knownSecrets = new Set<string>();

/** Remember a secret value so it is masked wherever it appears later. Short values are ignored. */
export function registerSecret(value: string | undefined | null): void {
  if (value && value.length >= 6) knownSecrets.add(value);
}

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

export function redactString(s: string): string {
  let out = s;
  for (const secret of knownSecrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  return out;
}

/** A deep copy of `value` with secret-named keys and known secret values masked. */
export function redact<T>(value: T, depth = 0): T {
  if (typeof value === 'string') return redactString(value) as T;
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (Buffer.isBuffer(value)) return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1)) as T;
  if (value instanceof Error) {
    const e = { type: value.name, message: redactString(value.message), code: (value as { code?: unknown }).code };
    return e as T;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = isSecretKey(k) && v !== undefined && v !== null && typeof v !== 'object' ? REDACTED : redact(v, depth + 1);
  }
  return out as T;
}

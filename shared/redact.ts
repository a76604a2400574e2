/**
 * Secret scrubbing shared by logs, dead letters and error texts. Two nets: keys whose name
 * says "secret" are masked wherever they sit, and any value registered as a secret (every
 * value the SecretStore hands out, every configured key) is masked inside any string.
 */
export const REDACTED = '[REDACTED]';

const SECRET_KEY = /(authorization|token|secret|password|passwd|api[-_]?key|apikey|cookie|credential|private[-_]?key|hmac|signature)/i;
/** Values kept for good: configured keys, whatever the secret store hands out. */
const knownSecrets = new Set<string>();
/**
 * Values with a known end of life (access and refresh tokens that rotate, every 2 hours at TikTok),
 * with when it is: dropped once past, so a service refreshing tokens for months does not scan
 * every token it ever saw in each string it logs.
 */
const expiring = new Map<string, number>();
let lastSweep = 0;

/**
 * Remember a secret value so it is masked wherever it appears later. Short values are ignored.
 * `until` (epoch ms) is the end of its life: a token past it is worthless, and forgotten. A value
 * registered once with an end keeps it when it is registered again without one (the same token is
 * registered wherever it is read, by code that knows nothing of its expiry).
 */
export function registerSecret(value: string | undefined | null, o: { until?: number } = {}): void {
  if (!value || value.length < 6) return;
  if (o.until === undefined) {
    if (!expiring.has(value)) knownSecrets.add(value);
  } else {
    knownSecrets.delete(value);
    expiring.set(value, Math.max(expiring.get(value) ?? 0, o.until));
  }
  sweep();
}

/** Forget a value that no longer works (a refresh token the vendor retired when it rotated it). */
export function forgetSecret(value: string | undefined | null): void {
  if (value) expiring.delete(value);
}

/** How many values are masked now (for tests and metrics). */
export const knownSecretCount = (): number => knownSecrets.size + expiring.size;

/** Drops the values past their end, once a minute at most (or when the clock was set back). */
function sweep(now = Date.now()): void {
  if (Math.abs(now - lastSweep) < 60_000) return;
  lastSweep = now;
  for (const [v, until] of expiring) if (until <= now) expiring.delete(v);
}

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

export function redactString(s: string): string {
  sweep();
  let out = s;
  for (const secret of knownSecrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  for (const secret of expiring.keys()) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
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

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { registerSecret } from '../../shared/redact.ts';
import { secretPaths, type SecretStore } from '../../shared/secrets/index.ts';

/**
 * Platform notifications skip approval, so an agent must not be able to mark its own command as
 * one. The HTTP API, holding the platform token, seals the command: an HMAC over the command id,
 * workspace, expiry and params with a key kept in the secret store (platform/email-seal), which
 * agents never read. The handler also checks that the sealed command id and workspace are the
 * command's own, so a seal copied onto another command is refused.
 */
export interface Sealer {
  seal(commandId: string, workspaceId: string, params: Record<string, unknown>, ttlMs?: number): Record<string, unknown>;
  /** The seal's command and workspace when it is genuine and unexpired, else null. */
  verify(params: Record<string, unknown>, now?: number): { command_id: string; workspace_id: string } | null;
}

export const SEAL_PATH = secretPaths.platform('email-seal');

/** Canonical JSON: keys sorted at every level, so the same params always give the same bytes. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

export function createSealer(key: Buffer): Sealer {
  const mac = (commandId: string, workspaceId: string, expiresAt: number, params: Record<string, unknown>) =>
    createHmac('sha256', key).update(canonical({ commandId, workspaceId, expiresAt, params })).digest('hex');
  return {
    seal(commandId, workspaceId, params, ttlMs = 72 * 3600_000) {
      const expires_at = Date.now() + ttlMs;
      const { platform_seal: _, ...rest } = params;
      return { ...rest, platform_seal: { command_id: commandId, workspace_id: workspaceId, expires_at, mac: mac(commandId, workspaceId, expires_at, rest) } };
    },
    verify(params, now = Date.now()) {
      const { platform_seal: s, ...rest } = params as { platform_seal?: { command_id?: unknown; workspace_id?: unknown; expires_at?: unknown; mac?: unknown } };
      if (!s || typeof s.command_id !== 'string' || typeof s.workspace_id !== 'string' || typeof s.expires_at !== 'number' || typeof s.mac !== 'string') return null;
      if (s.expires_at < now) return null;
      const want = Buffer.from(mac(s.command_id, s.workspace_id, s.expires_at, rest), 'hex');
      const got = Buffer.from(s.mac, 'hex');
      return got.length === want.length && timingSafeEqual(got, want) ? { command_id: s.command_id, workspace_id: s.workspace_id } : null;
    },
  };
}

/**
 * The sealing key from the secret store, created on first start (check-and-set, so instances
 * starting at once agree on one).
 */
export async function loadSealKey(store: SecretStore): Promise<Buffer> {
  let record = await store.get(SEAL_PATH);
  if (!record?.value.key) {
    await store.create(SEAL_PATH, { key: randomBytes(32).toString('base64') });
    record = await store.get(SEAL_PATH);
  }
  const key = record?.value.key;
  if (!key) throw new Error('the seal key could not be created');
  registerSecret(key);
  return Buffer.from(key, 'base64');
}

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isWorkspaceId } from '../../shared/ids.ts';
import { secretPaths, type SecretStore } from '../../shared/secrets/index.ts';

/** Who called the HTTP API: the platform (EMAIL_API_TOKEN) or one workspace (its own token). */
export type Caller = { kind: 'platform' } | { kind: 'workspace'; workspaceId: string };

/** Where a workspace's API token lives: only its SHA-256, so the store never holds the token itself. */
export const apiTokenPath = (workspaceId: string) => secretPaths.workspace(workspaceId, 'email-api');

const sha256 = (s: string) => createHash('sha256').update(s).digest();
const same = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

/** A new workspace token `iet.<workspace>.<secret>` and the record to store for it. */
export function newApiToken(workspaceId: string): { token: string; record: Record<string, string> } {
  const token = `iet.${workspaceId}.${randomBytes(24).toString('base64url')}`;
  return { token, record: { token_sha256: sha256(token).toString('hex') } };
}

/** Resolves a bearer token to its caller, or null (unknown, revoked or malformed: all 401). */
export async function authenticate(header: string | undefined, o: { platformToken?: string; store: SecretStore }): Promise<Caller | null> {
  const token = /^Bearer\s+(\S{16,512})$/i.exec(header ?? '')?.[1];
  if (!token) return null;
  if (o.platformToken && same(sha256(token), sha256(o.platformToken))) return { kind: 'platform' };
  const ws = /^iet\.([a-z0-9][a-z0-9_-]{0,62})\.[A-Za-z0-9_-]{20,}$/.exec(token)?.[1];
  if (!ws || !isWorkspaceId(ws)) return null;
  const stored = (await o.store.get(apiTokenPath(ws)))?.value.token_sha256;
  return stored && same(sha256(token), Buffer.from(stored, 'hex')) ? { kind: 'workspace', workspaceId: ws } : null;
}

import { HubError } from '../errors.ts';
import { assertSegment, assertWorkspaceId } from '../ids.ts';
import { redactString } from '../redact.ts';

/** Bookkeeping kept beside a secret: ISO timestamps, optional expiry (OAuth tokens) and labels. */
export interface SecretMetadata {
  createdAt: string;
  updatedAt: string;
  expiresAt?: string;
  labels?: Record<string, string>;
}

/** One secret: its fields (e.g. `api_key`, `access_token`) and its metadata. */
export interface SecretRecord {
  value: Record<string, string>;
  metadata: SecretMetadata;
}

/** Platform keys, per-workspace credentials and OAuth tokens. A missing secret is `null`, not an error. */
export interface SecretStore {
  readonly kind: 'vault' | 'file';
  get(path: string): Promise<SecretRecord | null>;
  put(path: string, value: Record<string, string>, opts?: { expiresAt?: string; labels?: Record<string, string> }): Promise<void>;
  /** Writes only if nothing is at `path` yet (check-and-set); false when something already was. */
  create(path: string, value: Record<string, string>): Promise<boolean>;
  /** Direct children of `prefix` ('' = root); folders end with '/'. */
  list(prefix: string): Promise<string[]>;
  /** Deleting a missing path is fine. */
  delete(path: string): Promise<void>;
  /** Never throws. */
  health(): Promise<{ ok: boolean; detail?: string }>;
  close?(): Promise<void>;
}

// Dots are excluded outright, so `..` and `.` can never form a segment; so is anything non-ASCII.
const PATH = /^[a-z0-9_-]+(\/[a-z0-9_-]+)*$/;

/** Returns the path unchanged, or throws `invalid_secret_path` (no `..`, no empty segments, only [a-z0-9_/-]). */
export function assertSecretPath(path: string, { prefix = false } = {}): string {
  if (typeof path === 'string' && prefix && path === '') return path;
  const p = typeof path === 'string' && prefix ? path.replace(/\/$/, '') : path;
  if (typeof p !== 'string' || !PATH.test(p)) {
    throw new HubError('invalid_secret_path', 'secret paths are lowercase segments of [a-z0-9_-] separated by single /');
  }
  return path;
}

/** The only places secrets live: `platform/<provider>`, `workspaces/<ws>/connectors/<connector>` and `workspaces/<ws>/agents/<agent>`. */
export const secretPaths = {
  platform: (provider: string) => `platform/${assertSegment('provider', provider)}`,
  workspace: (workspaceId: string, connector: string) => `workspaces/${assertWorkspaceId(workspaceId)}/connectors/${assertSegment('connector', connector)}`,
  workspacePrefix: (workspaceId: string) => `workspaces/${assertWorkspaceId(workspaceId)}/`,
  /** An agent principal's Kafka credentials (admin only). */
  agentPrincipal: (workspaceId: string, agentId: string) => `workspaces/${assertWorkspaceId(workspaceId)}/agents/${assertSegment('agent', agentId)}`,
};

/**
 * A secret-free stand-in for a backend error. HTTP client errors carry the request (token header,
 * body with the secret being written), and `cause` is printed by util.inspect and console.error,
 * so only the name, message, errno code and status survive.
 */
export function safeCause(e: unknown): Error {
  const src = (e ?? {}) as { name?: string; message?: string; code?: unknown; response?: { statusCode?: number } };
  const out = new Error(redactString(String(src.message ?? e)));
  out.name = typeof src.name === 'string' ? src.name : 'Error';
  return Object.assign(out, {
    ...(typeof src.code === 'string' ? { code: src.code } : {}),
    ...(typeof src.response?.statusCode === 'number' ? { status: src.response.statusCode } : {}),
  });
}

/** The error every backend throws when it cannot answer: retryable, naming no secret. */
export function unavailable(what: string, cause: unknown): HubError {
  return new HubError('secret_store_unavailable', `secret store unavailable: ${what}`, { retryable: true, cause: safeCause(cause) });
}

import { HubError } from '../errors.ts';
import { assertSegment, assertWorkspaceId } from '../ids.ts';

export interface SecretMetadata {
  createdAt: string;
  updatedAt: string;
  expiresAt?: string;
  labels?: Record<string, string>;
}

export interface SecretRecord {
  value: Record<string, string>;
  metadata: SecretMetadata;
}

/** Platform keys, per-workspace credentials and OAuth tokens. A missing secret is `null`, not an error. */
export interface SecretStore {
  readonly kind: 'vault' | 'file';
  get(path: string): Promise<SecretRecord | null>;
  put(path: string, value: Record<string, string>, opts?: { expiresAt?: string; labels?: Record<string, string> }): Promise<void>;
  /** Direct children of `prefix` ('' = root); folders end with '/'. */
  list(prefix: string): Promise<string[]>;
  /** Deleting a missing path is fine. */
  delete(path: string): Promise<void>;
  /** Never throws. */
  health(): Promise<{ ok: boolean; detail?: string }>;
  close?(): Promise<void>;
}

const PATH = /^[a-z0-9_-]+(\/[a-z0-9_-]+)*$/;

/** Returns the path unchanged, or throws `invalid_secret_path` (no `..`, no empty segments, ASCII only). */
export function assertSecretPath(path: string, { prefix = false } = {}): string {
  if (prefix && path === '') return path;
  const p = prefix ? path.replace(/\/$/, '') : path;
  if (!PATH.test(p) || p.split('/').includes('..')) throw new HubError('invalid_secret_path', 'secret paths are lowercase segments of [a-z0-9_-] separated by /');
  return path;
}

export const secretPaths = {
  platform: (provider: string) => `platform/${assertSegment('provider', provider)}`,
  workspace: (workspaceId: string, connector: string) => `workspaces/${assertWorkspaceId(workspaceId)}/connectors/${assertSegment('connector', connector)}`,
  workspacePrefix: (workspaceId: string) => `workspaces/${assertWorkspaceId(workspaceId)}/`,
};

/** The error every backend throws when it cannot answer: retryable, and naming no secret. */
export function unavailable(what: string, cause: unknown): HubError {
  return new HubError('secret_store_unavailable', `secret store unavailable: ${what}`, { retryable: true, cause });
}

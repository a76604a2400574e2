import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { HubError } from '../errors.ts';
import { secretPaths, type SecretStore } from '../secrets/index.ts';

/**
 * An admin's decision travels with the command it releases, as a header signed with a key only
 * admins and workers can read (the secret store; agents have no access to it). The worker checks
 * the signature and the digest of the command it received, so it needs no wait for the approvals
 * table to catch up, and a release an agent wrote itself, or one moved onto other content, never runs.
 */
export const RELEASE_HEADER = 'ionflux.approval';

const releaseSchema = z.object({
  approval_id: z.string(),
  digest: z.string(),
  decision: z.enum(['approved', 'denied']),
  decided_by: z.string(),
  decided_at: z.string(),
});
export type Release = z.infer<typeof releaseSchema>;

const KEY_PATH = secretPaths.platform('approvals');

/** The signing key, created once (check-and-set, so racing creators agree on one). */
export async function approvalSigningKey(store: SecretStore): Promise<Buffer> {
  let rec = await store.get(KEY_PATH);
  if (!rec?.value.signing_key) {
    await store.create(KEY_PATH, { signing_key: randomBytes(32).toString('base64') });
    rec = await store.get(KEY_PATH);
  }
  const key = rec?.value.signing_key;
  if (!key) throw new HubError('secret_store_unavailable', 'the approval signing key could not be created', { retryable: true });
  return Buffer.from(key, 'base64');
}

const mac = (key: Buffer, body: string) => createHmac('sha256', key).update(body).digest();

/** `<base64url JSON>.<base64url HMAC-SHA256>` of a decision. */
export function signRelease(key: Buffer, r: Release): string {
  const body = Buffer.from(JSON.stringify(r)).toString('base64url');
  return `${body}.${mac(key, body).toString('base64url')}`;
}

/** The decision if the header is well formed and signed with `key`; null otherwise. */
export function verifyRelease(key: Buffer, header: string | undefined): Release | null {
  const [body, sig, extra] = (header ?? '').split('.');
  if (!body || !sig || extra !== undefined) return null;
  const given = Buffer.from(sig, 'base64url');
  const expected = mac(key, body);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  try {
    const parsed = releaseSchema.safeParse(JSON.parse(Buffer.from(body, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** The signing key read once (`get`), or again (`reload`: it may have been rotated); a failed read is not kept. */
export function approvalKeyCache(store: SecretStore): { get(): Promise<Buffer>; reload(): Promise<Buffer> } {
  let key: Promise<Buffer> | undefined;
  const reload = () => (key = approvalSigningKey(store).catch((e: unknown) => ((key = undefined), Promise.reject(e))));
  return { get: () => key ?? reload(), reload };
}

/** The key as workers use it: read once, read again when a release does not verify (rotation). */
export function releaseVerifier(store: SecretStore): (header: string | undefined) => Promise<Release | null> {
  const key = approvalKeyCache(store);
  return async (header) => {
    if (!header) return null;
    const first = verifyRelease(await key.get(), header);
    return first ?? verifyRelease(await key.reload(), header);
  };
}

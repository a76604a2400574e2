import { basename } from 'node:path';
import { HubError } from '../../shared/errors.ts';
import { FORBIDDEN_DESTINATION, outboundFetch, readCapped } from '../../shared/net/outbound.ts';
import type { ResolvedAttachment } from './providers/types.ts';

export type AttachmentRef = { filename: string; url: string; content_type?: string } | { filename: string; content_base64: string; content_type?: string };

export interface AttachmentOptions {
  maxBytes: number;
  /** URL prefixes fetched even on private addresses (the LLM orchestrator's stored artifacts); see isTrustedUrl. */
  trustedPrefixes: string[];
  allowPrivate: boolean;
  signal: AbortSignal;
}

const refuse = (code: string, message: string, retryable = false) => new HubError(code, message, { retryable });

/** Path segments of a stored artifact's name: no percent-escapes a server could decode into `/` or `..`. */
const PLAIN_PATH = /^[A-Za-z0-9._~-]+(?:\/[A-Za-z0-9._~-]+)*$/;

/**
 * The URL, parsed and normalised by the URL parser (`..` and `%2e%2e` segments resolved, default
 * port dropped, IPv4 shorthand expanded), if it is under one of `prefixes`: the same origin, and a
 * path below the prefix's path (taken as a folder) made of plain segments. Otherwise null, as for
 * an unparsable URL or prefix.
 */
export function isTrustedUrl(url: string, prefixes: string[]): URL | null {
  const u = URL.parse(url);
  if (!u || u.username || u.password) return null;
  for (const prefix of prefixes) {
    const p = URL.parse(prefix);
    if (!p || p.origin !== u.origin) continue;
    const folder = p.pathname.endsWith('/') ? p.pathname : `${p.pathname}/`;
    if (u.pathname.startsWith(folder) && PLAIN_PATH.test(u.pathname.slice(folder.length))) return u;
  }
  return null;
}

/** Fetches one URL: no redirects, a size limit checked on the header and while reading. */
async function fetchBytes(url: string, o: AttachmentOptions): Promise<{ bytes: Buffer; contentType: string }> {
  // The hub's own stored artifacts (URLs under a trusted prefix, fetched as parsed) may live on a
  // private address; any other URL goes through the shared outbound policy, checked on the address
  // actually connected to.
  const trusted = isTrustedUrl(url, o.trustedPrefixes);
  const init = { redirect: 'manual', signal: AbortSignal.any([o.signal, AbortSignal.timeout(30_000)]) } as const;
  let res: Response;
  try {
    res = (await (trusted ? fetch(trusted, init) : o.allowPrivate ? fetch(url, init) : outboundFetch(url, init))) as Response;
  } catch (e) {
    if ((e as { code?: string }).code === FORBIDDEN_DESTINATION || (e as { cause?: { code?: string } }).cause?.code === FORBIDDEN_DESTINATION) throw refuse('attachment_url_forbidden', (e as Error).message);
    throw refuse('attachment_unavailable', `could not fetch attachment from ${new URL(url).host}: ${(e as Error).message}`, true);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw refuse('attachment_unavailable', `fetching the attachment answered ${res.status}`, res.status === 429 || res.status >= 500);
  }
  const bytes = await readCapped(res, o.maxBytes, () => refuse('attachment_too_large', `attachment over ${o.maxBytes} bytes`));
  return { bytes, contentType: (res.headers.get('content-type') ?? 'application/octet-stream').split(';')[0]!.trim() };
}

/** Every attachment of a command with its bytes; fetched once, before the first unit is sent. */
export async function resolveAttachments(refs: AttachmentRef[] | undefined, o: AttachmentOptions): Promise<ResolvedAttachment[]> {
  const out: ResolvedAttachment[] = [];
  let total = 0;
  for (const a of refs ?? []) {
    const got = 'url' in a ? await fetchBytes(a.url, o) : { bytes: Buffer.from(a.content_base64, 'base64'), contentType: 'application/octet-stream' };
    total += got.bytes.length;
    if (total > o.maxBytes) throw refuse('attachment_too_large', `attachments over ${o.maxBytes} bytes in total`);
    out.push({ filename: basename(a.filename), contentType: a.content_type ?? got.contentType, content: got.bytes });
  }
  return out;
}

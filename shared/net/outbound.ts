import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Agent, buildConnector, fetch as undiciFetch, type RequestInit as UndiciInit } from 'undici';
import { HubError } from '../errors.ts';
import { forbiddenRange } from './addresses.ts';
import { isAllowed, parseAllowlist, type AllowRule } from './allowlist.ts';

/**
 * The one outbound policy for connectors (webhook.post, LLM media, every future connector): a
 * request may not reach loopback, private, link-local or reserved addresses unless
 * OUTBOUND_ALLOWLIST names it. The check runs inside the connection step: the name is resolved
 * once, every address is checked, and the socket is opened to the checked address itself, so a
 * DNS answer that changes between check and connect (rebinding) has nothing to slip through.
 */
export const FORBIDDEN_DESTINATION = 'forbidden_destination';

/** A refused destination: not retryable (the same URL would be refused again). */
export class ForbiddenDestination extends HubError {
  constructor(message: string) {
    super(FORBIDDEN_DESTINATION, message, { retryable: false });
  }
}

export type LookupAll = (host: string) => Promise<{ address: string; family: number }[]>;

export interface OutboundOptions {
  allow?: readonly AllowRule[];
  /** DNS resolution (tests substitute their own); default: the system resolver, every address. */
  lookup?: LookupAll;
  /** Connect timeout per attempt. */
  connectTimeoutMs?: number;
}

/** Resolves `host` and returns the address to connect to, or throws ForbiddenDestination. */
export async function checkedAddress(host: string, port: number, o: OutboundOptions = {}): Promise<{ address: string; family: number }> {
  const name = host.replace(/^\[|\]$/g, '');
  const family = isIP(name);
  const addresses = family ? [{ address: name, family }] : await (o.lookup ?? systemLookup)(name);
  if (!addresses.length) throw new HubError('dns_no_answer', `${name} did not resolve`, { retryable: true });
  // Every answer is checked, not just the first: a name answering with a public and a private
  // address is refused rather than left to chance.
  for (const a of addresses) {
    const range = forbiddenRange(a.address);
    if (range && !isAllowed(o.allow ?? [], name, port, a.address)) {
      throw new ForbiddenDestination(`refusing to connect to ${name}${a.address === name ? '' : ` (${a.address})`}: ${range} address; allow it with OUTBOUND_ALLOWLIST`);
    }
  }
  return addresses[0]!;
}

const systemLookup: LookupAll = (host) => dnsLookup(host, { all: true, verbatim: true });

type ConnectOptions = Parameters<ReturnType<typeof buildConnector>>[0];
type ConnectCallback = Parameters<ReturnType<typeof buildConnector>>[1];

/** An undici Agent whose every connection goes through checkedAddress. */
export function createOutboundAgent(o: OutboundOptions = {}): Agent {
  const base = buildConnector({ timeout: o.connectTimeoutMs ?? 10_000 });
  const connect = (opts: ConnectOptions, cb: ConnectCallback) => {
    const port = Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80);
    checkedAddress(opts.hostname, port, o).then(
      // `host` stays the original name: TLS SNI and certificate checks use it, not the IP.
      ({ address }) => base({ ...opts, hostname: address }, cb),
      (e: Error) => cb(e, null),
    );
  };
  return new Agent({ connect });
}

export type OutboundInit = Omit<UndiciInit, 'dispatcher'>;
export type OutboundFetch = (url: string | URL, init?: OutboundInit) => Promise<Response>;

/** A fetch through the policy. A refused destination rejects with ForbiddenDestination itself, not "fetch failed". */
export function createOutboundFetch(o: OutboundOptions = {}): OutboundFetch {
  const dispatcher = createOutboundAgent(o);
  return async (url, init) => {
    try {
      // A WHATWG Response like the global fetch's (from another copy of undici, hence the cast).
      return (await undiciFetch(url, { ...init, dispatcher })) as unknown as Response;
    } catch (e) {
      const cause = (e as { cause?: unknown }).cause;
      if (cause instanceof ForbiddenDestination) throw cause;
      throw e;
    }
  };
}

let processAllow: readonly AllowRule[] | undefined;
let processFetch: OutboundFetch | undefined;

/** Sets this process's policy (services call it once at start with their parsed OUTBOUND_ALLOWLIST). */
export function configureOutbound(allow: readonly AllowRule[]): void {
  processAllow = allow;
  processFetch = createOutboundFetch({ allow });
}

/**
 * This process's allow-list: what the service configured from its parsed environment
 * (createRuntime); in a process that did not (the CLI, scripts) OUTBOUND_ALLOWLIST read once, and
 * with nothing set nothing is allow-listed.
 */
export function outboundAllowlist(): readonly AllowRule[] {
  return (processAllow ??= parseAllowlist(process.env.OUTBOUND_ALLOWLIST));
}

/** The fetch every connector uses for vendor and user URLs, under this process's policy (outboundAllowlist). */
export const outboundFetch: OutboundFetch = (url, init) => (processFetch ??= createOutboundFetch({ allow: outboundAllowlist() }))(url, init);

/**
 * A response body read whole, at most `maxBytes`: a larger declared length is refused before
 * reading, a larger stream as soon as it passes the limit (`tooLarge` makes the error).
 */
export async function readCapped(res: Response, maxBytes: number, tooLarge: () => Error): Promise<Buffer> {
  const refuse = async () => {
    await res.body?.cancel().catch(() => undefined);
    return tooLarge();
  };
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) throw await refuse();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body ?? []) {
    size += (chunk as Uint8Array).byteLength;
    if (size > maxBytes) throw await refuse();
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks);
}

export interface FollowOptions {
  signal: AbortSignal;
  headers?: Record<string, string>;
  fetch?: OutboundFetch;
  /** What is fetched, for messages ("the audio"), and the error codes: a URL that is not http(s), one that cannot be fetched. */
  what: string;
  codes: { invalid: string; unavailable: string };
}

/**
 * GET `raw` through the outbound policy (`outboundFetch` unless `o.fetch`): http(s) only, at most 3
 * redirects, each target checked by the policy again. Resolves to the first 2xx answer and the URL
 * that gave it; a refused destination rejects with ForbiddenDestination; a network error, too many
 * redirects or another status with `o.codes.unavailable` (retryable for network errors, 429, 5xx).
 */
export async function fetchFollowing(raw: string, o: FollowOptions): Promise<{ res: Response; url: URL }> {
  const get = o.fetch ?? outboundFetch;
  const unavailable = (message: string, retryable: boolean) => new HubError(o.codes.unavailable, message, { retryable });
  let url = new URL(raw);
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new HubError(o.codes.invalid, `${o.what} URL must be http or https`);
    let res: Response;
    try {
      res = await get(url, { redirect: 'manual', signal: o.signal, headers: o.headers });
    } catch (e) {
      if (e instanceof ForbiddenDestination) throw e;
      throw unavailable(`could not fetch ${o.what} from ${url.host}: ${(e as Error).message}`, true);
    }
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel();
      if (hop >= 3) throw unavailable(`too many redirects fetching ${o.what}`, false);
      url = new URL(res.headers.get('location')!, url);
      continue;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw unavailable(`fetching ${o.what} answered ${res.status}`, res.status === 429 || res.status >= 500);
    }
    return { res, url };
  }
}

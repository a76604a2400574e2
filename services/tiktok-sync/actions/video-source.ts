import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { HubError } from '../../../shared/errors.ts';

// Loopback, private, link-local (cloud metadata), CGNAT, unspecified and their IPv6 forms.
const PRIVATE = new BlockList();
for (const [net, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.168.0.0', 16]] as const) PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10]] as const) PRIVATE.addSubnet(net, bits, 'ipv6');

async function assertPublic(url: URL): Promise<void> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [{ address: host, family: isIP(host) }] : await lookup(host, { all: true }).catch(() => []);
  if (addresses.length === 0) throw new HubError('video_unavailable', `cannot resolve ${url.hostname}`, { retryable: true });
  for (const a of addresses) {
    const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a.address)?.[1];
    if (PRIVATE.check(v4 ?? a.address, v4 || a.family !== 6 ? 'ipv4' : 'ipv6')) throw new HubError('video_url_forbidden', `${url.hostname} resolves to a private or loopback address; set TIKTOK_MEDIA_ALLOW_PRIVATE=true to allow it`);
  }
}

/**
 * The video bytes of a FILE_UPLOAD post, fetched from the command's video_url: http(s) only,
 * public addresses only (unless allowed), at most 3 redirects each checked, at most `maxBytes`.
 */
export async function fetchVideo(raw: string, o: { maxBytes: number; allowPrivate: boolean; signal: AbortSignal }): Promise<{ bytes: Buffer; contentType: string }> {
  let url = new URL(raw);
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new HubError('invalid_video_url', 'video_url must be http or https');
    if (!o.allowPrivate) await assertPublic(url);
    let res: Response;
    try {
      res = await fetch(url, { redirect: 'manual', signal: o.signal });
    } catch (e) {
      throw new HubError('video_unavailable', `could not fetch the video from ${url.host}: ${(e as Error).message}`, { retryable: true });
    }
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel();
      if (hop >= 3) throw new HubError('video_unavailable', 'too many redirects fetching the video');
      url = new URL(res.headers.get('location')!, url);
      continue;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new HubError('video_unavailable', `fetching the video answered ${res.status}`, { retryable: res.status === 429 || res.status >= 500 });
    }
    const contentType = (res.headers.get('content-type') ?? 'video/mp4').split(';')[0]!.trim().toLowerCase();
    if (!/^video\/|^application\/octet-stream$/.test(contentType)) throw new HubError('unsupported_media_type', `video_url answered content-type ${contentType}; expected video/*`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body ?? []) {
      size += (chunk as Uint8Array).byteLength;
      if (size > o.maxBytes) {
        await res.body?.cancel().catch(() => undefined);
        throw new HubError('video_too_large', `the video is over TIKTOK_UPLOAD_MAX_BYTES (${o.maxBytes} bytes)`);
      }
      chunks.push(Buffer.from(chunk as Uint8Array));
    }
    return { bytes: Buffer.concat(chunks), contentType: contentType === 'application/octet-stream' ? 'video/mp4' : contentType };
  }
}

/** TikTok's chunking: files under 5 MB in one chunk; else floor(size / chunk) chunks, the last taking the rest. */
export function chunking(size: number, chunkBytes: number): { chunkSize: number; count: number } {
  if (size < 5 * 1024 * 1024) return { chunkSize: size, count: 1 };
  const count = Math.max(1, Math.floor(size / chunkBytes));
  return { chunkSize: chunkBytes, count };
}

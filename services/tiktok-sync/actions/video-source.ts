import { HubError } from '../../../shared/errors.ts';
import { outboundFetch } from '../../../shared/net/outbound.ts';

/**
 * The video bytes of a FILE_UPLOAD post, fetched from the command's video_url through the hub's
 * outbound policy (no private or loopback address unless OUTBOUND_ALLOWLIST names it): http(s)
 * only, at most 3 redirects each checked, at most `maxBytes`.
 */
export async function fetchVideo(raw: string, o: { maxBytes: number; signal: AbortSignal }): Promise<{ bytes: Buffer; contentType: string }> {
  let url = new URL(raw);
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new HubError('invalid_video_url', 'video_url must be http or https');
    let res: Response;
    try {
      res = await outboundFetch(url, { redirect: 'manual', signal: o.signal });
    } catch (e) {
      if (e instanceof HubError) throw e; // forbidden_destination
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

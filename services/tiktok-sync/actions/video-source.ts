import { HubError } from '../../../shared/errors.ts';
import { fetchFollowing, readCapped } from '../../../shared/net/outbound.ts';

/**
 * The video bytes of a FILE_UPLOAD post, fetched from the command's video_url through the hub's
 * outbound policy (no private or loopback address unless OUTBOUND_ALLOWLIST names it): http(s)
 * only, at most 3 redirects each checked, at most `maxBytes`.
 */
export async function fetchVideo(raw: string, o: { maxBytes: number; signal: AbortSignal }): Promise<{ bytes: Buffer; contentType: string }> {
  const { res } = await fetchFollowing(raw, { signal: o.signal, what: 'the video', codes: { invalid: 'invalid_video_url', unavailable: 'video_unavailable' } });
  const contentType = (res.headers.get('content-type') ?? 'video/mp4').split(';')[0]!.trim().toLowerCase();
  if (!/^video\/|^application\/octet-stream$/.test(contentType)) {
    await res.body?.cancel();
    throw new HubError('unsupported_media_type', `video_url answered content-type ${contentType}; expected video/*`);
  }
  const bytes = await readCapped(res, o.maxBytes, () => new HubError('video_too_large', `the video is over TIKTOK_UPLOAD_MAX_BYTES (${o.maxBytes} bytes)`));
  return { bytes, contentType: contentType === 'application/octet-stream' ? 'video/mp4' : contentType };
}

/** TikTok's chunking: files under 5 MB in one chunk; else floor(size / chunk) chunks, the last taking the rest. */
export function chunking(size: number, chunkBytes: number): { chunkSize: number; count: number } {
  if (size < 5 * 1024 * 1024) return { chunkSize: size, count: 1 };
  const count = Math.max(1, Math.floor(size / chunkBytes));
  return { chunkSize: chunkBytes, count };
}

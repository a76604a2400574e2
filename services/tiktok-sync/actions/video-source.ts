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

const MB = 1024 * 1024;

export interface ChunkPlan {
  chunkSize: number;
  count: number;
}

/**
 * TikTok's chunk plan (Media Transfer Guide): total_chunk_count = floor(video_size / chunk_size);
 * chunks of 5-64 MB but the last, which takes the trailing bytes (up to 128 MB); a video under
 * 5 MB goes whole with chunk_size = its size; one over 64 MB in two chunks at least.
 */
export function chunking(size: number, chunkBytes: number): ChunkPlan {
  // At most one chunk's worth (any video under 5 MB, as chunkBytes >= 5 MB): one chunk of the whole
  // video, which is what TikTok asks under 5 MB; below chunkBytes floor(size / chunkBytes) would be 0.
  if (size <= chunkBytes) return { chunkSize: size, count: 1 };
  // Over 64 MB but under two chunks: halves (32-64 MB, as chunkBytes <= 64 MB) make the two TikTok wants.
  if (size > 64 * MB && size < 2 * chunkBytes) return { chunkSize: Math.floor(size / 2), count: 2 };
  return { chunkSize: chunkBytes, count: Math.floor(size / chunkBytes) };
}

/** The byte range [first, end) of each chunk of a plan: chunkSize each, the last one to the end of the video. */
export function chunkRanges(size: number, plan: ChunkPlan): { first: number; end: number }[] {
  return Array.from({ length: plan.count }, (_, i) => ({ first: i * plan.chunkSize, end: i === plan.count - 1 ? size : (i + 1) * plan.chunkSize }));
}

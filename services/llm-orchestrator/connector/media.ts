import { basename } from 'node:path';
import { HubError } from '../../../shared/errors.ts';
import { fetchFollowing, readCapped, type OutboundFetch } from '../../../shared/net/outbound.ts';

/** Audio formats the transcription endpoint takes, by content type -> file extension it needs. */
const AUDIO_TYPES: Record<string, string> = {
  'audio/wav': 'wav', 'audio/x-wav': 'wav', 'audio/wave': 'wav', 'audio/vnd.wave': 'wav',
  'audio/mpeg': 'mp3', 'audio/mp3': 'mp3', 'audio/mp4': 'm4a', 'audio/m4a': 'm4a', 'audio/x-m4a': 'm4a',
  'audio/ogg': 'ogg', 'application/ogg': 'ogg', 'audio/webm': 'webm', 'audio/flac': 'flac', 'audio/x-flac': 'flac',
  'video/mp4': 'mp4', 'video/mpeg': 'mpeg', 'video/webm': 'webm',
};
const AUDIO_EXTENSIONS = new Set(['flac', 'mp3', 'mp4', 'mpeg', 'mpga', 'm4a', 'ogg', 'wav', 'webm']);

export interface FetchedMedia {
  bytes: Buffer;
  contentType: string;
  filename: string;
}

const refuse = (code: string, message: string, retryable = false) => new HubError(code, message, { retryable });

/**
 * Fetches an audio file by URL for transcription: http(s) only, through the outbound policy
 * (public addresses unless OUTBOUND_ALLOWLIST names them, checked on the address connected to,
 * at every one of at most 3 redirects), an audio content type, and at most `maxBytes`, enforced
 * on the declared length and again while streaming.
 */
export async function fetchAudio(raw: string, o: { maxBytes: number; timeoutMs: number; signal: AbortSignal; fetch?: OutboundFetch }): Promise<FetchedMedia> {
  const { res, url } = await fetchFollowing(raw, {
    signal: AbortSignal.any([o.signal, AbortSignal.timeout(o.timeoutMs)]),
    headers: { accept: 'audio/*, video/mp4, video/webm, application/octet-stream' },
    fetch: o.fetch,
    what: 'the audio',
    codes: { invalid: 'invalid_media_url', unavailable: 'media_unavailable' },
  });
  const contentType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const name = basename(decodeURIComponent(url.pathname)) || 'audio';
  const urlExt = /\.([a-z0-9]+)$/i.exec(name)?.[1]?.toLowerCase();
  const ext = AUDIO_TYPES[contentType] ?? (contentType === 'application/octet-stream' && urlExt && AUDIO_EXTENSIONS.has(urlExt) ? urlExt : undefined);
  if (!ext) {
    await res.body?.cancel();
    throw refuse('unsupported_media_type', `the audio URL answered content-type ${contentType || '(none)'}; expected audio (${[...AUDIO_EXTENSIONS].join(', ')})`);
  }
  const bytes = await readCapped(res, o.maxBytes, () => refuse('media_too_large', `the audio is over the limit of ${o.maxBytes} bytes`));
  const filename = urlExt === ext ? name : `${name.replace(/\.[a-z0-9]+$/i, '') || 'audio'}.${ext}`;
  return { bytes, contentType, filename };
}

/** Seconds of audio in a PCM WAV file, from its header; undefined for anything else. */
export function wavSeconds(b: Buffer): number | undefined {
  if (b.length < 44 || b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') return undefined;
  let byteRate = 0;
  for (let at = 12; at + 8 <= b.length; ) {
    const id = b.toString('ascii', at, at + 4);
    const size = b.readUInt32LE(at + 4);
    if (id === 'fmt ' && at + 16 <= b.length) byteRate = b.readUInt32LE(at + 16);
    if (id === 'data') return byteRate > 0 ? Math.min(size, b.length - at - 8) / byteRate : undefined;
    at += 8 + size + (size % 2);
  }
  return undefined;
}

import { describe, expect, it } from 'vitest';
import { parseAllowlist } from '../../../shared/net/allowlist.ts';
import { createOutboundFetch } from '../../../shared/net/outbound.ts';
import { fetchAudio, wavSeconds } from './media.ts';

const opts = { maxBytes: 1000, timeoutMs: 1000, signal: new AbortController().signal, fetch: createOutboundFetch() };

describe('fetchAudio', () => {
  it('refuses loopback, private and link-local addresses (cloud metadata) unless allowed', async () => {
    for (const url of ['http://127.0.0.1:59999/a.wav', 'http://10.1.2.3/a.wav', 'http://169.254.169.254/latest/meta-data', 'http://[::1]/a.wav', 'http://[::ffff:127.0.0.1]/a.wav', 'http://localhost/a.wav']) {
      await expect(fetchAudio(url, opts)).rejects.toMatchObject({ code: 'forbidden_destination', retryable: false });
    }
    // Allow-listed, the request is made (nothing listens there: unavailable, not forbidden).
    const allowed = { ...opts, fetch: createOutboundFetch({ allow: parseAllowlist('127.0.0.1') }) };
    await expect(fetchAudio('http://127.0.0.1:59999/a.wav', allowed)).rejects.toMatchObject({ code: 'media_unavailable' });
  });
  it('refuses schemes other than http(s)', async () => {
    await expect(fetchAudio('file:///etc/passwd', opts)).rejects.toMatchObject({ code: 'invalid_media_url' });
  });
});

describe('wavSeconds', () => {
  it('reads the duration of a PCM WAV from its header', () => {
    const b = Buffer.alloc(44 + 32000);
    b.write('RIFF', 0, 'ascii');
    b.write('WAVEfmt ', 8, 'ascii');
    b.writeUInt32LE(16, 16);
    b.writeUInt32LE(16000, 28);
    b.write('data', 36, 'ascii');
    b.writeUInt32LE(32000, 40);
    expect(wavSeconds(b)).toBe(2);
    expect(wavSeconds(Buffer.from('not a wav at all, really not one'))).toBeUndefined();
  });
});

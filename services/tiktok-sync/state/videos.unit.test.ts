import { describe, expect, it } from 'vitest';
import { videoVersion } from './videos.ts';
import { chunking } from '../actions/video-source.ts';

describe('video versions', () => {
  const v = { id: '1', title: 'a', like_count: 3, cover_image_url: 'https://cdn/x?sig=1', embed_html: '<x>' };
  it('ignore the signed cover URL and field order, change with content and counts', () => {
    expect(videoVersion({ ...v, cover_image_url: 'https://cdn/x?sig=2' })).toBe(videoVersion(v));
    expect(videoVersion({ like_count: 3, title: 'a', id: '1' })).toBe(videoVersion(v));
    expect(videoVersion({ ...v, like_count: 4 })).not.toBe(videoVersion(v));
    expect(videoVersion({ ...v, title: 'b' })).not.toBe(videoVersion(v));
  });
});

describe('upload chunking (TikTok media transfer rules)', () => {
  const MB = 1024 * 1024;
  it('sends files under 5 MB whole, else floor(size / chunk) chunks with the rest in the last', () => {
    expect(chunking(3 * MB, 10 * MB)).toEqual({ chunkSize: 3 * MB, count: 1 });
    expect(chunking(11 * MB, 5 * MB)).toEqual({ chunkSize: 5 * MB, count: 2 });
    expect(chunking(7 * MB, 10 * MB)).toEqual({ chunkSize: 10 * MB, count: 1 });
  });
});

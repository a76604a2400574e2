import { describe, expect, it } from 'vitest';
import { videoVersion } from './videos.ts';

describe('video versions', () => {
  const v = { id: '1', title: 'a', like_count: 3, cover_image_url: 'https://cdn/x?sig=1', embed_html: '<x>' };
  it('ignore the signed cover URL and field order, change with content and counts', () => {
    expect(videoVersion({ ...v, cover_image_url: 'https://cdn/x?sig=2' })).toBe(videoVersion(v));
    expect(videoVersion({ like_count: 3, title: 'a', id: '1' })).toBe(videoVersion(v));
    expect(videoVersion({ ...v, like_count: 4 })).not.toBe(videoVersion(v));
    expect(videoVersion({ ...v, title: 'b' })).not.toBe(videoVersion(v));
  });
});

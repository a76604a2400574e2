import { describe, expect, it } from 'vitest';
import { validateManifest } from '../manifest.ts';
import { manifest, researchHashtagsInput, videosListInput, videosPublishInput } from './tiktok.ts';

describe('the TikTok connector spec', () => {
  it('is a valid manifest; only publishing is an external write', () => {
    const m = validateManifest(manifest);
    expect(Object.entries(m.actions).filter(([, a]) => a.approvalGate !== 'read_only').map(([n, a]) => [n, a.approvalGate])).toEqual([['videos.publish', 'external_write']]);
  });

  it("checks params the way TikTok's reference limits them", () => {
    expect(videosListInput.safeParse({ max_count: 21 }).success).toBe(false);
    expect(videosListInput.parse({})).toMatchObject({ max_count: 20 });
    expect(researchHashtagsInput.safeParse({ hashtags: ['cats'], start_date: '20250101', end_date: '20250205' }).success).toBe(false);
    expect(researchHashtagsInput.safeParse({ hashtags: ['#cats'], start_date: '20250101', end_date: '20250130' }).success).toBe(true);
    expect(videosPublishInput.safeParse({ source: 'PULL_FROM_URL', video_url: 'ftp://x/y.mp4', privacy_level: 'SELF_ONLY' }).success).toBe(false);
    expect(videosPublishInput.safeParse({ source: 'PULL_FROM_URL', video_url: 'https://x/y.mp4', privacy_level: 'EVERYONE' }).success).toBe(false);
  });
});

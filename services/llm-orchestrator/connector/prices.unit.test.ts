import { describe, expect, it } from 'vitest';
import { costOf, DEFAULT_PRICES } from './prices.ts';

describe('costOf', () => {
  it('prices tokens per 1K, input and output apart', () => {
    expect(costOf(DEFAULT_PRICES['openai/gpt-4o'], { prompt_tokens: 1000, completion_tokens: 500 })).toEqual({ usd: 0.0075, priced: true });
  });
  it('prices audio per minute and images by quality and size', () => {
    expect(costOf(DEFAULT_PRICES['openai/whisper-1'], { audio_seconds: 90 }).usd).toBeCloseTo(0.009, 10);
    expect(costOf(DEFAULT_PRICES['openai/dall-e-3'], { images: 2 }, { size: '1024x1024', quality: 'standard' }).usd).toBe(0.08);
    expect(costOf(DEFAULT_PRICES['openai/dall-e-3'], { images: 1 }, { size: '1792x1024', quality: 'hd' }).usd).toBe(0.12);
    // An unknown size is charged at the highest listed price, never at zero.
    expect(costOf(DEFAULT_PRICES['openai/dall-e-2'], { images: 1 }, { size: '4096x4096' }).usd).toBe(0.02);
  });
  it('says when a model has no price', () => {
    expect(costOf(undefined, { prompt_tokens: 10 })).toEqual({ usd: 0, priced: false });
  });
});

import { z } from 'zod';

/**
 * The date the prices below were read from the vendors' public price pages (OpenAI platform
 * pricing, Anthropic's model pricing, DeepSeek's "Models & Pricing"). Vendors change them:
 * override with LLM_PRICES rather than trusting this table blindly. Cache discounts and batch
 * pricing are not modelled: the cost is the list price of the tokens, seconds or images used.
 */
export const PRICES_TAKEN_AT = '2025-06-01';

export const priceSchema = z.object({
  input_per_1k: z.number().nonnegative().optional(),
  output_per_1k: z.number().nonnegative().optional(),
  per_audio_minute: z.number().nonnegative().optional(),
  /** One price, or by `<quality>:<size>`, `<size>` or `<quality>` (most specific wins). */
  per_image: z.union([z.number().nonnegative(), z.record(z.string(), z.number().nonnegative())]).optional(),
});
export type Price = z.infer<typeof priceSchema>;

/** USD, keyed `<provider>/<model>`; per 1K tokens, per audio minute, per image. */
export const DEFAULT_PRICES: Record<string, Price> = {
  'openai/gpt-4o': { input_per_1k: 0.0025, output_per_1k: 0.01 },
  'openai/gpt-4o-mini': { input_per_1k: 0.00015, output_per_1k: 0.0006 },
  'openai/gpt-3.5-turbo': { input_per_1k: 0.0005, output_per_1k: 0.0015 },
  'openai/text-embedding-3-small': { input_per_1k: 0.00002 },
  'openai/text-embedding-3-large': { input_per_1k: 0.00013 },
  'openai/whisper-1': { per_audio_minute: 0.006 },
  'openai/dall-e-3': { per_image: { 'standard:1024x1024': 0.04, 'standard:1024x1792': 0.08, 'standard:1792x1024': 0.08, 'hd:1024x1024': 0.08, 'hd:1024x1792': 0.12, 'hd:1792x1024': 0.12 } },
  'openai/dall-e-2': { per_image: { '256x256': 0.016, '512x512': 0.018, '1024x1024': 0.02 } },
  'openai/gpt-image-1': { per_image: { 'low:1024x1024': 0.011, 'medium:1024x1024': 0.042, 'high:1024x1024': 0.167, low: 0.016, medium: 0.063, high: 0.25 } },
  'anthropic/claude-3-haiku-20240307': { input_per_1k: 0.00025, output_per_1k: 0.00125 },
  'anthropic/claude-3-5-haiku-latest': { input_per_1k: 0.0008, output_per_1k: 0.004 },
  'anthropic/claude-3-5-sonnet-latest': { input_per_1k: 0.003, output_per_1k: 0.015 },
  // Input at the cache-miss price.
  'deepseek/deepseek-chat': { input_per_1k: 0.00027, output_per_1k: 0.0011 },
  'deepseek/deepseek-reasoner': { input_per_1k: 0.00055, output_per_1k: 0.00219 },
};

/** What a call used, in the units prices are quoted in. */
export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  audio_seconds?: number;
  images?: number;
}

/**
 * The list-price cost of one call, rounded to 1e-8 USD; `priced: false` when the table has no
 * price for the model (local models, unknown names), and the cost is then 0.
 */
export function costOf(price: Price | undefined, usage: Usage, image: { size?: string; quality?: string } = {}): { usd: number; priced: boolean } {
  if (!price) return { usd: 0, priced: false };
  let usd = 0;
  usd += ((usage.prompt_tokens ?? 0) / 1000) * (price.input_per_1k ?? 0);
  usd += ((usage.completion_tokens ?? 0) / 1000) * (price.output_per_1k ?? 0);
  usd += ((usage.audio_seconds ?? 0) / 60) * (price.per_audio_minute ?? 0);
  if (usage.images) usd += usage.images * imagePrice(price.per_image, image);
  return { usd: Math.round(usd * 1e8) / 1e8, priced: true };
}

function imagePrice(p: Price['per_image'], o: { size?: string; quality?: string }): number {
  if (p === undefined) return 0;
  if (typeof p === 'number') return p;
  const size = o.size ?? '1024x1024';
  const quality = o.quality ?? 'standard';
  return p[`${quality}:${size}`] ?? p[size] ?? p[quality] ?? Math.max(0, ...Object.values(p));
}

/**
 * Shopify ids go beyond 2^53 (its own examples do), so the numeric `id` of a REST-shaped body is
 * written from the digits of the GraphQL gid, never through a JS number.
 */
export class ExactInt {
  constructor(readonly digits: string) {}
}

const MARK = '\u0000int:';

/** JSON.stringify that writes ExactInt values as bare integers. */
export function stringifyExact(value: unknown): string {
  const text = JSON.stringify(value, (_k, v: unknown) => (v instanceof ExactInt ? `${MARK}${v.digits}` : v));
  return text.replace(/"\\u0000int:(\d{1,30})"/g, '$1');
}

/** `gid://shopify/Product/123` -> '123' (null when it is not a gid). */
export function gidNumber(gid: unknown): string | null {
  const m = typeof gid === 'string' ? /^gid:\/\/shopify\/[A-Za-z]+\/(\d{1,30})(\?.*)?$/.exec(gid) : null;
  return m ? m[1]! : null;
}

/** The numeric id of a gid as an ExactInt (null when absent). */
export const idOf = (gid: unknown): ExactInt | null => {
  const n = gidNumber(gid);
  return n === null ? null : new ExactInt(n);
};

/**
 * `p`, unless it has not settled within `ms`: then a rejection with `timedOut()`, made when the
 * time is up (so its message can say how far things got). The timer goes once `p` settles, and
 * never keeps the process alive by itself.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, timedOut: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(timedOut()), ms).unref()));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

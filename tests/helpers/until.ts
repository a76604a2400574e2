/**
 * Polls `check` every 200 ms until it holds; past `timeoutMs` it fails naming `what`, followed by
 * what `context` tells (a service's last log lines, what a simulator saw) to show why.
 */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000, context?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${context ? `\n${context()}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `until` whose failures tell `context`, for a suite: `const until = untilWith(() => sync.output.slice(-15).join('\n'))`. */
export const untilWith =
  (context: () => string) =>
  (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> =>
    until(what, check, timeoutMs, context);

import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's times (BENCH_CLK_TCK, default 100: `getconf CLK_TCK`). */
const CLK_TCK = Number(process.env.BENCH_CLK_TCK ?? 100) || 100;

/** user+system CPU seconds of a process so far (all its threads), or null when unreadable. */
export function cpuSeconds(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/**
 * Where a V8 CPU profile (node --cpu-prof) of the worker spent its time: busy vs idle, self time
 * by area (package, kafkajs module or project file), inclusive time by area and by project
 * function (any frame of it on the stack), self time by function.
 *   node --import tsx bench/commands/prof-summary.ts <file.cpuprofile> [top] [--from=ms] [--to=ms] [--busiest=s]
 * --from/--to restrict it to a window (ms after the profile started); --busiest=S picks the S
 * seconds with the least idle time, i.e. the throughput phase rather than start-up (tsx
 * compiling, state tables catching up) or the paced phase. run.sh prints both the whole profile
 * and the busiest window when BENCH_CPU_PROF=1.
 */
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const args = process.argv.slice(2);
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const [file, topArg] = args.filter((a) => !a.startsWith('--'));
if (!file) throw new Error('usage: prof-summary.ts <file.cpuprofile> [top] [--from=ms] [--to=ms] [--busiest=seconds]');
const top = Number(topArg ?? 20);
const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Sample times in µs after the start; the window is [fromUs, toUs].
const times: number[] = [];
prof.timeDeltas.reduce((t, dt, i) => ((times[i] = t + dt), t + dt), 0);
const isIdle = (id: number) => byId.get(id)!.callFrame.functionName === '(idle)';
let fromUs = flag('from') ? Number(flag('from')) * 1000 : 0;
let toUs = flag('to') ? Number(flag('to')) * 1000 : Infinity;
const busiest = flag('busiest');
if (busiest) {
  // The window of that length with the most non-idle time (the measured phase, not start-up).
  const len = Number(busiest) * 1e6;
  let best = -1;
  let busy = 0;
  let j = 0;
  for (let i = 0; i < times.length; i++) {
    if (!isIdle(prof.samples[i]!)) busy += prof.timeDeltas[i] ?? 0;
    while (times[i]! - times[j]! > len) {
      if (!isIdle(prof.samples[j]!)) busy -= prof.timeDeltas[j] ?? 0;
      j++;
    }
    if (busy > best) {
      best = busy;
      fromUs = times[j]!;
      toUs = times[i]!;
    }
  }
}
const windowed = fromUs > 0 || toUs !== Infinity;

function area(n: Node): string {
  const { url, functionName } = n.callFrame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native/builtin)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) {
    if (nm[1] === 'kafkajs') {
      const sub = /kafkajs\/src\/([^/]+(?:\/[^/]+)?)/.exec(url);
      return `kafkajs/${sub ? sub[1]!.replace(/\.js$/, '') : ''}`;
    }
    return nm[1]!;
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const proj = /\/(shared|services|bench|bin)\/(.+)$/.exec(url);
  if (proj) return `${proj[1]}/${proj[2]}`;
  return url;
}
const fnName = (n: Node) => {
  const short = n.callFrame.url.replace(/^.*\/(node_modules|work\/main)\//, '');
  return `${n.callFrame.functionName || '(anonymous)'}  ${short}${short ? `:${n.callFrame.lineNumber + 1}` : ''}`;
};
const isProject = (n: Node) => /\/(shared|services|bench)\//.test(n.callFrame.url) && !n.callFrame.url.includes('node_modules');

let total = 0;
const selfArea = new Map<string, number>();
const selfFn = new Map<string, number>();
const inclArea = new Map<string, number>();
const inclFn = new Map<string, number>();
prof.samples.forEach((id, i) => {
  const dt = prof.timeDeltas[i] ?? 0;
  if (times[i]! < fromUs || times[i]! > toUs) return;
  total += dt;
  const n = byId.get(id)!;
  const add = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + dt);
  add(selfArea, area(n));
  add(selfFn, fnName(n));
  const seenA = new Set<string>();
  const seenF = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const c = byId.get(cur)!;
    const a = area(c);
    if (!seenA.has(a)) {
      seenA.add(a);
      add(inclArea, a);
    }
    if (isProject(c)) {
      const f = fnName(c);
      if (!seenF.has(f)) {
        seenF.add(f);
        add(inclFn, f);
      }
    }
  }
});

const pct = (v: number) => `${((100 * v) / total).toFixed(1).padStart(5)}%`;
const ms = (v: number) => `${(v / 1000).toFixed(0).padStart(7)} ms`;
const print = (title: string, m: Map<string, number>, n: number) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${pct(v)} ${ms(v)}  ${k}`);
};
const idle = selfArea.get('(idle)') ?? 0;
console.log(`profile ${file}: ${(total / 1e6).toFixed(1)} s sampled${windowed ? ` (window ${(fromUs / 1e6).toFixed(1)}..${toUs === Infinity ? 'end' : (toUs / 1e6).toFixed(1)} s after start)` : ''}, ${pct(total - idle).trim()} busy on the main thread, ${pct(idle).trim()} idle`);
print('self time by area', selfArea, top);
print('inclusive time by area (on the stack)', inclArea, top);
print('inclusive time by project function', inclFn, top);
print('self time by function', selfFn, top);

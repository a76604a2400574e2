/**
 * Where a V8 CPU profile (node --cpu-prof) spent its time: self time by area (package or
 * project folder) and by function, and inclusive time by area (any frame of that area on the
 * stack). `node --import tsx bench/ingest/prof-summary.ts <file.cpuprofile> [top]`.
 * run.sh prints it for the ingester when BENCH_CPU_PROF=1.
 */
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const [file, topArg] = process.argv.slice(2);
if (!file) throw new Error('usage: prof-summary.ts <file.cpuprofile> [top]');
const top = Number(topArg ?? 25);
const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

function area(n: Node): string {
  const { url, functionName } = n.callFrame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native/builtin)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const proj = /\/(shared|services|bench|bin)\/([^/]+)/.exec(url);
  if (proj) return `${proj[1]}/${proj[2]}`;
  return url;
}

const total = prof.timeDeltas.reduce((a, b) => a + b, 0);
const selfArea = new Map<string, number>();
const selfFn = new Map<string, number>();
const inclArea = new Map<string, number>();
prof.samples.forEach((id, i) => {
  const dt = prof.timeDeltas[i] ?? 0;
  const n = byId.get(id)!;
  const a = area(n);
  selfArea.set(a, (selfArea.get(a) ?? 0) + dt);
  const short = n.callFrame.url.replace(/^.*\/(node_modules|work\/main)\//, '');
  const fk = `${n.callFrame.functionName || '(anonymous)'}  ${short}${short ? `:${n.callFrame.lineNumber + 1}` : ''}`;
  selfFn.set(fk, (selfFn.get(fk) ?? 0) + dt);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const ar = area(byId.get(cur)!);
    if (!seen.has(ar)) {
      seen.add(ar);
      inclArea.set(ar, (inclArea.get(ar) ?? 0) + dt);
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
console.log(`profile ${file}: ${(total / 1e6).toFixed(1)} s sampled, ${pct(total - idle).trim()} busy (on the main thread), ${pct(idle).trim()} idle`);
print('self time by area', selfArea, top);
print('inclusive time by area (on the stack)', inclArea, top);
print('self time by function', selfFn, top);

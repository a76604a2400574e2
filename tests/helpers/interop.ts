import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The virtualenv deploy/local/install.sh makes, holding confluent-kafka[avro,schemaregistry]. */
export function interopPython(): string {
  const cache = process.env.IONFLUX_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'ionflux');
  const python = process.env.IONFLUX_PYTHON ?? join(cache, 'venv', 'bin', 'python');
  if (!existsSync(python)) throw new Error(`${python} missing: run deploy/local/install.sh`);
  return python;
}

export interface ForeignRecord {
  topic: string;
  schema_id: number;
  key: string | null;
  value: Record<string, unknown>;
}

/** Decodes `count` records of `topic` with Python's confluent-kafka AvroDeserializer. */
export async function decodeWithConfluentPython(a: { brokers: string[]; registryUrl: string; topic: string; count: number }): Promise<ForeignRecord[]> {
  const script = new URL('../interop/decode_avro.py', import.meta.url).pathname;
  // One more try if the first run fails or hangs (each run bounded: 20 s of polling, killed at 25 s),
  // so a stalled connection cannot eat the test's whole minute.
  for (let attempt = 1; ; attempt++) {
    try {
      const { stdout } = await run(interopPython(), [script, a.brokers.join(','), a.registryUrl, a.topic, String(a.count), '20'], { timeout: 25_000, killSignal: 'SIGKILL' });
      return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as ForeignRecord);
    } catch (e) {
      if (attempt >= 2) throw e;
    }
  }
}

/**
 * Two overlapping transactions on partition 0 of `topic`, aborted in the other order than they
 * began, then one committed record (tests/interop/aborted_txns.py): the offset of each record and
 * what Confluent's read_committed consumer read.
 */
export async function abortOverlappingTransactions(a: { brokers: string[]; topic: string; tag: string }): Promise<Record<'a1' | 'b1' | 'a2' | 'b2' | 'end', number> & { seen: string[] }> {
  const script = new URL('../interop/aborted_txns.py', import.meta.url).pathname;
  const { stdout } = await run(interopPython(), [script, a.brokers.join(','), a.topic, a.tag], { timeout: 60_000, killSignal: 'SIGKILL' });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<'a1' | 'b1' | 'a2' | 'b2' | 'end', number> & { seen: string[] };
}

/** [partition, offset, event id] of every record of `topic`, as Confluent's Python client reads it (read_committed). */
export async function eventIdsWithConfluentPython(a: { brokers: string[]; topic: string }): Promise<[number, number, string | null][]> {
  const script = new URL('../interop/event_ids.py', import.meta.url).pathname;
  const { stdout } = await run(interopPython(), [script, a.brokers.join(','), a.topic, '40'], { timeout: 60_000, killSignal: 'SIGKILL', maxBuffer: 256 * 1024 * 1024 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as [number, number, string | null][];
}

/**
 * A writer holding a transaction open on partition 0 of `topic` (tests/interop/zombie_txn.py):
 * `opened` resolves once its record is written; `tryCommit()` then asks it to commit and tells
 * whether Kafka took the commit.
 */
export async function openZombieTransaction(a: { brokers: string[]; topic: string; transactionalId: string; value: string }): Promise<{ opened: number; tryCommit(): Promise<{ committed: boolean; error?: string }> }> {
  const script = new URL('../interop/zombie_txn.py', import.meta.url).pathname;
  const child = spawn(interopPython(), [script, a.brokers.join(','), a.topic, a.transactionalId, a.value], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let err = '';
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => (lines.push(JSON.parse(l) as Record<string, unknown>), waiters.splice(0).forEach((w) => w())));
  child.stderr!.on('data', (d) => (err += d));
  const line = (n: number) => new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error(`zombie_txn.py said nothing within 60 s: ${err}`))), 60_000);
    const check = () => (lines.length > n ? (clearTimeout(timer), resolve(lines[n]!)) : waiters.push(check));
    check();
  });
  const first = await line(0);
  if (typeof first.open !== 'number') throw new Error(`zombie_txn.py could not write: ${JSON.stringify(first)} ${err}`);
  const opened = first.open;
  return {
    opened,
    async tryCommit() {
      child.stdin!.end('commit\n');
      return (await line(1)) as { committed: boolean; error?: string };
    },
  };
}

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const INSIDE = 'shared/bus/kafka/';

/**
 * Modules that may use kafkajs directly although they live outside shared/bus/kafka/, and why.
 * Each acts as a plain third-party Kafka client, so it must not go through the hub's bus.
 */
const ALLOWED: Record<string, string> = {
  'bench/commands/relay.ts': "the yardstick of bench-commands is by definition a bare kafkajs relay, with no hub code in it",
  'bench/commands/drive.ts': 'the load generator drives the hub and the bare relay through one plain client, so both are measured by the same client',
  'bench/ingest/load.ts': "counts what the hub and the Redpanda Connect peer wrote with one plain client, independent of either",
  'bench/ingest/floor-edge.ts': "the HTTP side of bench-ingest's two floors, bare node:http + kafkajs, with no hub code in it",
  'bench/ingest/bare-inbox.ts': "the design floor of bench-ingest is by definition the ingest design's Kafka work in bare kafkajs, with no hub code in it",
  'bench/producer/encode.ts': "measures kafkajs's own produce request encoder (patched against published), with no hub code in it",
};

const IMPORT = /(?:from\s+|import\s*\(\s*|require\s*\(\s*)['"]kafkajs(?:\/[^'"]*)?['"]/;

function* sources(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.') || entry.name === 'dist' || entry.name === 'reports') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (/\.(c|m)?(t|j)s$/.test(entry.name)) yield relative(ROOT, path).split('\\').join('/');
  }
}

describe('the Kafka client stays behind the bus', () => {
  it('imports kafkajs only in shared/bus/kafka/ and in the allowed third-party clients', () => {
    const importing = [...sources(ROOT)].filter((f) => IMPORT.test(readFileSync(join(ROOT, f), 'utf8')));
    expect(importing.some((f) => f.startsWith(INSIDE))).toBe(true); // the scan itself works
    expect(importing.filter((f) => !f.startsWith(INSIDE) && !(f in ALLOWED))).toEqual([]);
  });

  it('keeps the allow-list honest: every entry still imports kafkajs', () => {
    const stale = Object.keys(ALLOWED).filter((f) => !IMPORT.test(readFileSync(join(ROOT, f), 'utf8')));
    expect(stale).toEqual([]);
  });
});

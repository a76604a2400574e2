import { readFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { checkCompatibility, createRegistry, registerAvro, schemaFiles } from '../shared/events/registry.ts';
import { runCli } from './helpers/cli.ts';
import { infraEnv, uid } from './helpers/infra.ts';

const { registryUrl } = infraEnv();

async function envelopeWith(change: (schema: { fields: object[] }) => void): Promise<string> {
  const schema = JSON.parse(await readFile(schemaFiles[0]!.file, 'utf8')) as { fields: object[] };
  change(schema);
  return JSON.stringify(schema);
}

/**
 * The registry is `make up`'s too: the subjects made here are deleted at the end (soft, then
 * permanently, as Confluent's API requires).
 */
const made: string[] = [];
const testSubject = (name: string) => (made.push(name), name);
afterAll(async () => {
  for (const subject of made) {
    for (const query of ['', '?permanent=true']) await fetch(`${registryUrl}/subjects/${encodeURIComponent(subject)}${query}`, { method: 'DELETE' });
  }
  const left = (await (await fetch(`${registryUrl}/subjects`)).json()) as string[];
  expect(left.filter((s) => made.includes(s))).toEqual([]);
});

describe('schema evolution is checked against the registry (BACKWARD)', () => {
  it('accepts an added optional field and refuses an added required field or a removed default', async () => {
    const subject = testSubject(`test-${uid()}`);
    await registerAvro(createRegistry(registryUrl), subject, await envelopeWith(() => undefined));

    const optional = await envelopeWith((s) => s.fields.push({ name: 'trace_id', type: ['null', 'string'], default: null }));
    expect(await checkCompatibility(registryUrl, subject, optional)).toMatchObject({ compatible: true, firstVersion: false });

    const required = await envelopeWith((s) => s.fields.push({ name: 'tenant_region', type: 'string' }));
    const verdict = await checkCompatibility(registryUrl, subject, required);
    expect(verdict.compatible).toBe(false);

    // The registry itself refuses to take it as the next version.
    await expect(registerAvro(createRegistry(registryUrl), subject, required)).rejects.toThrow(/registering/);
  });

  it('registers a new subject from several processes at once (every service starting together), all getting the same id', async () => {
    const subject = testSubject(`io.ionflux.test.Race${uid()}`);
    const schema = JSON.stringify({ type: 'record', name: 'Race', namespace: 'io.ionflux.test', fields: [{ name: 'id', type: 'string' }] });
    const ids = await Promise.all(Array.from({ length: 6 }, () => registerAvro(createRegistry(registryUrl), subject, schema)));
    expect(new Set(ids).size).toBe(1);
    const config = (await (await fetch(`${registryUrl}/config/${subject}`)).json()) as { compatibilityLevel: string };
    expect(config.compatibilityLevel).toBe('BACKWARD');
  });

  it('lets a subject the registry has never seen take its first version', async () => {
    // Confluent answers 404 (40401) here, Apicurio answers is_compatible: true; both mean "allowed".
    const verdict = await checkCompatibility(registryUrl, `test-${uid()}`, await envelopeWith(() => undefined));
    expect(verdict.compatible).toBe(true);
  });

  it('`ionflux schemas check` passes for the files in schemas/', async () => {
    const { code, stdout } = await runCli(['schemas', 'check']);
    expect(stdout).toMatch(/io\.ionflux\.events\.PlatformEvent: (compatible|new subject)/);
    expect(code).toBe(0);
  });
});

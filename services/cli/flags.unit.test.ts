import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emailCommand } from './email.ts';
import { tailCommand } from './tail.ts';

// Each is refused before anything connects: no broker is needed to tell a bad flag.
describe('CLI flags that cannot work are usage errors (exit 2), not silence, a wait without end or a stack trace', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ionflux-cli-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('tail --timeout and --max take positive numbers', async () => {
    for (const [flag, value, said] of [
      ['--timeout', 'abc', /--timeout abc: expected a number of seconds/],
      ['--timeout', '0', /--timeout 0/],
      ['--max', 'abc', /--max abc: expected a whole number/],
      ['--max', '0', /--max 0/],
      ['--max', '1.5', /--max 1.5/],
    ] as const) {
      await expect(tailCommand.run(['ionflux.x.ws_a.orders.created', flag, value]), `${flag} ${value}`).rejects.toMatchObject({ name: 'UsageError', message: expect.stringMatching(said) });
    }
  });

  it('email templates approve --file: a missing file or one that is not JSON is named', async () => {
    const approve = (file: string) => emailCommand.run(['templates', 'approve', '--workspace', 'acme', '--file', file]);
    await expect(approve(join(dir, 'missing.json'))).rejects.toMatchObject({ name: 'UsageError', message: expect.stringMatching(/missing\.json: cannot be read \(ENOENT\)/) });
    await writeFile(join(dir, 'bad.json'), '{"id": "welcome", ');
    await expect(approve(join(dir, 'bad.json'))).rejects.toMatchObject({ name: 'UsageError', message: expect.stringMatching(/bad\.json: not JSON/) });
  });
});

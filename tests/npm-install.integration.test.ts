import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testTmpDir } from './helpers/infra.ts';

const root = join(dirname(new URL(import.meta.url).pathname), '..');

/**
 * deploy/local/npm-install.sh runs first in make up, make test and every infra-up. Two started
 * together on a checkout whose packages are stale must not run npm ci over each other (each deletes
 * node_modules while the other installs). Checked in a scratch copy of the layout, with an `npm`
 * that stands in for npm ci: it takes a while and then leaves node_modules/.package-lock.json.
 */
describe('deploy/local/npm-install.sh', () => {
  it('installs once when two runs start together on stale packages; the second finds them installed', async () => {
    const dir = testTmpDir('ionflux-npm-install-');
    mkdirSync(join(dir, 'deploy/local'), { recursive: true });
    mkdirSync(join(dir, 'bin'));
    copyFileSync(join(root, 'deploy/local/npm-install.sh'), join(dir, 'deploy/local/npm-install.sh'));
    writeFileSync(join(dir, 'package-lock.json'), '{}\n');
    writeFileSync(join(dir, 'bin/npm'), '#!/bin/bash\necho "$*" >>calls\nrm -rf node_modules\nsleep 2\nmkdir -p node_modules && echo {} >node_modules/.package-lock.json\n');
    chmodSync(join(dir, 'bin/npm'), 0o755);

    const install = () =>
      new Promise<number | null>((resolve) =>
        spawn('bash', ['deploy/local/npm-install.sh'], { cwd: dir, env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}` }, stdio: 'ignore' }).on('close', resolve),
      );
    expect(await Promise.all([install(), install()])).toEqual([0, 0]);
    expect(readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n')).toEqual(['ci --no-audit --no-fund --loglevel=error']);
    // Installed: a third run does nothing.
    expect(await install()).toBe(0);
    expect(readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n')).toHaveLength(1);
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ActionContext } from '../../shared/connectors/types.ts';
import { createFileSecretStore } from '../../shared/secrets/file-store.ts';
import { secretPaths, type SecretStore } from '../../shared/secrets/store.ts';
import { prepare } from './actions/prepare.ts';
import type { EmailDeps } from './deps.ts';
import { platformCredentialOf, withPlatformDefault } from './platform-store.ts';
import type { Provider } from './providers/types.ts';

const ENV_ACCOUNT = { provider: 'sendgrid', credential: 'SG.from-the-environment', from: 'noreply@hub.test' };
const STORED_ACCOUNT = { provider: 'sendgrid', credential: 'SG.kept-in-the-secret-store', from: 'noreply@hub.test' };

describe("the email dispatcher's platform account", () => {
  let dir: string;
  let base: SecretStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ionflux-email-platform-'));
    base = createFileSecretStore({ file: join(dir, 'secrets.enc'), keyFile: join(dir, 'secrets.key') });
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** What prepare() decides for a command whose resolved credentials are `credentials`. */
  async function prepared(store: SecretStore, credentials: Record<string, string>) {
    const linked: string[] = [];
    const d = {
      platformCredential: platformCredentialOf(store, 'email'),
      providerFor: (c: Record<string, string>) => ({ name: c.provider }) as unknown as Provider,
      onPlatformSendgrid: async (ws: string) => void linked.push(ws),
      attachments: { maxBytes: 1024, trustedPrefixes: [], allowPrivate: false },
    } as unknown as EmailDeps;
    const ctx = { params: {}, workspaceId: 'acme', credentials, idempotencyKey: 'cmd-1', signal: AbortSignal.timeout(5000) } as unknown as ActionContext<{ from?: undefined }>;
    const p = await prepare(d, ctx);
    return { platform: p.platform, linked };
  }

  it('is the environment\'s when the secret store keeps none, and a send through it links the workspace for delivery events', async () => {
    const store = withPlatformDefault(base, 'email', ENV_ACCOUNT, 0);
    expect(await platformCredentialOf(store, 'email')()).toBe(ENV_ACCOUNT.credential);
    expect(await prepared(store, ENV_ACCOUNT)).toEqual({ platform: true, linked: ['acme'] });
  });

  it('is the one kept at platform/email when there is one (with or without an environment account)', async () => {
    await base.put(secretPaths.platform('email'), STORED_ACCOUNT);
    for (const fallback of [null, ENV_ACCOUNT]) {
      const store = withPlatformDefault(base, 'email', fallback, 0);
      expect(await prepared(store, STORED_ACCOUNT)).toEqual({ platform: true, linked: ['acme'] });
      expect(await prepared(store, { ...STORED_ACCOUNT, credential: 'SG.a-workspace-own-account' })).toEqual({ platform: false, linked: [] });
    }
  });

  it("checks a workspace's own SMTP host, not the platform's", async () => {
    const smtp = { provider: 'smtp', credential: 'smtp://user:pass@127.0.0.1:2525', from: 'noreply@hub.test' };
    await base.put(secretPaths.platform('email'), smtp);
    const store = withPlatformDefault(base, 'email', null, 0);
    expect(await prepared(store, smtp)).toEqual({ platform: true, linked: [] });
    await expect(prepared(store, { ...smtp, credential: 'smtp://user:other@127.0.0.1:2526' })).rejects.toMatchObject({ code: 'smtp_host_forbidden' });
  });
});

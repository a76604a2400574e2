import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { freePort } from './ingester.ts';
import { testStateDir, uid } from './infra.ts';
import { spawnService, type RunningService } from './service.ts';

export interface RunningOrchestrator extends RunningService {
  /** The ops address (health, metrics, stored artifacts). */
  url: string;
}

/** services/llm-orchestrator/main.ts as its own process, the way `make up` runs it. */
export async function startOrchestrator(env: Record<string, string> = {}): Promise<RunningOrchestrator> {
  const port = await freePort();
  const stateDir = testStateDir();
  const fullEnv = { ...process.env, VAULT_TOKEN: process.env.VAULT_TOKEN ?? 'ionflux-dev-root', LLM_INSTANCE_ID: uid('llm'), IONFLUX_STATE_DIR: stateDir, LLM_ARTIFACTS_DIR: join(stateDir, 'artifacts'), LLM_OPS_PORT: String(port), LOG_LEVEL: 'info',
    // Tests post to receivers, simulators and media servers on 127.0.0.1, which the outbound policy refuses by default.
    OUTBOUND_ALLOWLIST: '127.0.0.1',
    // New workspaces' command topics are found within a second.
    COMMAND_TOPIC_RESCAN_MS: '1000',
    ...env };
  const url = `http://127.0.0.1:${port}`;
  return { url, ...(await spawnService({ name: 'llm-orchestrator', env: fullEnv, readyLine: 'llm orchestrator running', readyUrl: `${url}/readyz` })) };
}

/** A mono 16-bit PCM WAV of a 440 Hz tone. */
export function sineWav(seconds: number, sampleRate = 16_000): Buffer {
  const samples = Math.round(seconds * sampleRate);
  const b = Buffer.alloc(44 + samples * 2);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(36 + samples * 2, 4);
  b.write('WAVEfmt ', 8, 'ascii');
  b.writeUInt32LE(16, 16); // fmt chunk size
  b.writeUInt16LE(1, 20); // PCM
  b.writeUInt16LE(1, 22); // mono
  b.writeUInt32LE(sampleRate, 24);
  b.writeUInt32LE(sampleRate * 2, 28); // byte rate
  b.writeUInt16LE(2, 32); // block align
  b.writeUInt16LE(16, 34); // bits per sample
  b.write('data', 36, 'ascii');
  b.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) b.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 440 * i) / sampleRate) * 12_000), 44 + i * 2);
  return b;
}

/** A local HTTP server serving fixed files (audio for speech_to_text), counting the fetches. */
export async function startMediaServer() {
  const files = new Map<string, { body: Buffer; contentType: string; declareLength: boolean }>();
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const f = files.get(path);
    if (!f) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': f.contentType, ...(f.declareLength ? { 'content-length': f.body.length } : {}) }).end(f.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    /** Serves `body` at `path`; `declareLength: false` streams it chunked, with no Content-Length. */
    serve(path: string, body: Buffer, contentType: string, declareLength = true): string {
      files.set(path, { body, contentType, declareLength });
      return `${origin}${path}`;
    },
    hits: (path: string) => hits.get(path) ?? 0,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

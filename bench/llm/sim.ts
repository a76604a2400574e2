/**
 * The OpenAI-API simulator of tests/simulators/openai.ts as its own process, for bench/llm: both
 * the direct calls and the orchestrator reach it over loopback HTTP, on a core of its own.
 * Env: SIM_KEYS (comma-separated accepted keys). Prints `{"url": ...}` on stdout once listening.
 */
import { startOpenAISimulator } from '../../tests/simulators/openai.ts';

const sim = await startOpenAISimulator({ name: 'bench-sim', keys: (process.env.SIM_KEYS ?? '').split(',').filter(Boolean) });
// Keep only a bounded tail of the request log: the bench sends tens of thousands.
setInterval(() => sim.requests.splice(0, Math.max(0, sim.requests.length - 1000)), 1000).unref();
process.stdout.write(`${JSON.stringify({ url: sim.url })}\n`);
const stop = () => void sim.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

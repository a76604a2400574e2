#!/usr/bin/env bash
# `make bench-llm`: the latency the LLM orchestrator adds over calling the same OpenAI-API
# simulator directly with the openai package, p50/p99 at 1 and 50 concurrent requests, and req/s
# (bench/llm/drive.ts explains the method). Starts only the infrastructure that is not running and
# stops only that at exit; the simulator and orchestrator it starts are stopped by the driver.
#   BENCH_N1 (400) requests at concurrency 1, BENCH_N50 (3000) at 50, BENCH_WORKSPACES (50), BENCH_WARM_PER_WORKSPACE (30)
#   BENCH_ROUNDS=N: both phases of every path N times in turn, a line per round and the medians (use an odd N)
#   BENCH_CPU_PROF=1: a V8 CPU profile of the orchestrator to reports/bench-llm-prof/ (read it with bench/commands/prof-summary.ts)
source "$(dirname "$0")/../infra.sh"
# The orchestrator runs with the V8 flags `make up` gives it (deploy/local/env.sh node_flags).
export BENCH_SERVICE_NODE_FLAGS="$(node_flags llm-orchestrator)" BENCH_BROKER_PID="$(cat "$IONFLUX_RUN/kafka.pid" 2>/dev/null || echo 0)" BENCH_CLK_TCK="$(getconf CLK_TCK)"

node --import tsx bench/llm/drive.ts
rc=$?
echo "[bench-llm] report: reports/bench-llm.json" >&2
exit "$rc"

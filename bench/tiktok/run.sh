#!/usr/bin/env bash
# `make bench-tiktok`: videos per second that tiktok-sync lists from a TikTok v2 simulator and
# publishes as video.created events, under TikTok's per-minute limit for /v2/video/list/ and as a
# fraction of what that limit allows; next to a bare fetch loop against the same simulator and the
# hub with the limits lifted (bench/tiktok/drive.ts explains the method). Starts only the
# infrastructure that is not running and stops only that at exit.
#   BENCH_ACCOUNTS (40), BENCH_VIDEOS (1000 per account), BENCH_LIMITED_S (180)
source "$(dirname "$0")/../infra.sh"

node --import tsx bench/tiktok/drive.ts
rc=$?
echo "[bench-tiktok] report: reports/bench-tiktok.json" >&2
exit "$rc"

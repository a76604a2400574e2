#!/usr/bin/env bash
# `make bench-email`: messages per second over SMTP to a local aiosmtpd server, the email
# dispatcher (commands through Kafka, per-recipient ledger) next to nodemailer sending directly to
# the same server in the same run (bench/email/drive.ts explains the method). Starts only the
# infrastructure that is not running and stops only that at exit.
#   BENCH_SINGLE (1000) send commands over BENCH_WORKSPACES (20); BENCH_BULK_COMMANDS (4) x BENCH_BULK_SIZE (500)
source "$(dirname "$0")/../infra.sh"

node --import tsx bench/email/drive.ts
rc=$?
echo "[bench-email] report: reports/bench-email.json" >&2
exit "$rc"

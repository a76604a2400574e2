#!/usr/bin/env bash
# Stops what infra-up.sh started (by pid file); with names, only those (kafka registry vault).
set -euo pipefail
source "$(dirname "$0")/env.sh"
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(vault registry kafka)
for name in "${names[@]}"; do
  pidfile="$IONFLUX_RUN/$name.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
done

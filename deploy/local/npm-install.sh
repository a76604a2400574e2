#!/usr/bin/env bash
# Installs the npm packages when node_modules is missing or older than package-lock.json or a
# patch in patches/ (npm ci applies them with patch-package; a changed patch needs a fresh copy), one run
# at a time per checkout: two started together (make up and make test, test runs in two terminals)
# would run npm ci over each other, each deleting what the other installs.
set -euo pipefail
cd "$(dirname "$0")/../.."
stale() { [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ -n "$(find patches -type f -newer node_modules/.package-lock.json 2>/dev/null)" ]; }
stale || exit 0
if command -v flock >/dev/null; then
  exec 9>"${TMPDIR:-/tmp}/ionflux-npm-install-$(pwd | cksum | cut -d' ' -f1).lock"
  flock 9
  stale || exit 0 # the run it waited for installed them
fi
echo "[infra] npm ci" >&2
npm ci --no-audit --no-fund --loglevel=error

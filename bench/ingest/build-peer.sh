#!/usr/bin/env bash
# Builds Redpanda Connect (the peer of `make bench-ingest`, never a dependency of the hub) from
# the Go module proxy into $IONFLUX_CACHE/redpanda-connect/redpanda-connect, as INFRA.md says:
# a tiny wrapper module written here (no Go code is committed), only the io, pure and kafka
# components. Skips everything when the binary exists. Prints the binary's path on stdout.
#   PEER_BENTHOS_VERSION (default v4.60.0), PEER_CONNECT_VERSIONS (tried in order)
# Found here (2026-11): the Go module proxy answers 403 "not available" for connect v4.64-v4.70
# (and v4.57-v4.60, v4.62), and its checksum-database endpoint answers 404 for every connect
# version; v4.63.0 builds with benthos v4.60.0. So connect alone is exempted from the sumdb
# check (GONOSUMDB); its hash is still pinned in the wrapper's go.sum on first download, and
# every other module (benthos, franz-go, ...) is verified as usual.
set -uo pipefail
source "$(dirname "$0")/../../deploy/local/env.sh"

DIR="$IONFLUX_CACHE/redpanda-connect"
BIN="$DIR/redpanda-connect"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
command -v go >/dev/null || { echo "[peer] go is not installed" >&2; exit 1; }

BENTHOS="${PEER_BENTHOS_VERSION:-v4.60.0}"
CONNECTS="${PEER_CONNECT_VERSIONS:-v4.70.0 v4.63.0 v4.61.0 v4.56.0}"
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/redpanda-data/connect"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
SRC="$DIR/src"
mkdir -p "$SRC"
cd "$SRC" || exit 1
cat > main.go <<'GO'
package main

import (
	"context"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	_ "github.com/redpanda-data/connect/v4/public/components/kafka"
)

func main() {
	service.RunCLI(context.Background())
}
GO

for c in $CONNECTS; do
  rm -f go.mod go.sum
  go mod init ionflux.local/redpanda-connect-bench >/dev/null 2>&1
  echo "[peer] go get benthos $BENTHOS + connect $c (first build downloads modules; several minutes)" >&2
  # connect may require a newer benthos than asked for: go get then picks the minimum it needs.
  if ! go get "github.com/redpanda-data/benthos/v4@$BENTHOS" "github.com/redpanda-data/connect/v4@$c" >"$DIR/build.log" 2>&1; then
    echo "[peer] go get with connect $c failed: $(tail -n 3 "$DIR/build.log")" >&2
    continue
  fi
  go mod tidy >>"$DIR/build.log" 2>&1
  echo "[peer] building ($(go list -m github.com/redpanda-data/benthos/v4 github.com/redpanda-data/connect/v4 2>/dev/null | tr '\n' ' '))" >&2
  if CGO_ENABLED=0 go build -trimpath -o "$BIN.tmp" . >>"$DIR/build.log" 2>&1; then
    mv "$BIN.tmp" "$BIN"
    go list -m github.com/redpanda-data/benthos/v4 github.com/redpanda-data/connect/v4 >"$DIR/versions.txt" 2>/dev/null
    echo "$BIN"
    exit 0
  fi
  echo "[peer] build with connect $c failed: $(tail -n 5 "$DIR/build.log")" >&2
done
echo "[peer] could not build Redpanda Connect; see $DIR/build.log" >&2
exit 1

#!/usr/bin/env bash
# `make bench-shopify`: products per second that shopify-sync syncs from a Shopify simulator into
# the ingest inbox under Shopify's standard cost throttle (a 1,000-point bucket restored at 50
# points/s), as a fraction of what that budget allows at the query cost charged; the same sync
# with the throttle lifted; and Bulk Operations throughput (bench/shopify-sync/drive.ts explains
# the method). Starts only the infrastructure that is not running and stops only that at exit.
#   BENCH_PAGED_PRODUCTS (1000), BENCH_UNTHROTTLED_PRODUCTS (10000), BENCH_BULK_PRODUCTS (20000), BENCH_PAGE_SIZE (50)
source "$(dirname "$0")/../infra.sh"

node --import tsx bench/shopify-sync/drive.ts
rc=$?
echo "[bench-shopify] report: reports/bench-shopify.json" >&2
exit "$rc"

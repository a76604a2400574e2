#!/usr/bin/env bash
# In-process A/B of the ingester's CPU per delivery (bench/ingest/inproc.ts) between two checkouts:
#   bash bench/ingest/inproc-ab.sh <dir A> <dir B> [pairs, default 7]
# Each checkout needs node_modules (a symlink will do) and bench/ingest/inproc.ts (copy it in).
# Runs A then B, `pairs` times (alternating, so load from elsewhere hits both alike); prints each
# run's JSON and the mean CPU us per delivery of each side, and in how many pairs B was lower.
set -euo pipefail
a=$1 b=$2 pairs=${3:-7}
ra=() rb=()
for i in $(seq 1 "$pairs"); do
  x=$(cd "$a" && node --import tsx bench/ingest/inproc.ts | tail -1)
  y=$(cd "$b" && node --import tsx bench/ingest/inproc.ts | tail -1)
  echo "pair $i A $x"
  echo "pair $i B $y"
  ra+=("$(node -e 'console.log(JSON.parse(process.argv[1]).cpu_us_per_delivery)' "$x")")
  rb+=("$(node -e 'console.log(JSON.parse(process.argv[1]).cpu_us_per_delivery)' "$y")")
done
node -e '
const a = process.argv[1].split(" ").map(Number), b = process.argv[2].split(" ").map(Number);
const mean = (v) => Math.round(v.reduce((s, x) => s + x, 0) / v.length);
console.log(`A mean ${mean(a)} us, B mean ${mean(b)} us per delivery; B lower in ${a.filter((x, i) => b[i] < x).length} of ${a.length} pairs`);
' "${ra[*]}" "${rb[*]}"

#!/usr/bin/env bash
# The CPU comparison behind bench/results: every suite side by side with the PyTorch peer,
# raw JSON into OUT (default bench/results/raw-<date>). Run on a quiet machine; about 15 min
# on 2 cores. ROUNDS (default 2) repeats the small-preset suites to show the spread.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results/raw-$(date +%F)}
rounds=${ROUNDS:-2}
mkdir -p "$out"
bench() { echo "== $*" >&2; node dist/cli/main.js bench "$@" --json | tail -1; }
for r in $(seq 1 "$rounds"); do
  for s in train logprobs sample; do bench "$s" --preset small > "$out/small-$s-$r.json"; done
done
bench sample --preset tiny > "$out/tiny-sample-1.json"
for s in train logprobs sample; do bench "$s" --preset gpt2 --steps 5 --warmup 1 > "$out/gpt2-$s-1.json"; done
bench gemm > "$out/gemm-1.json"
echo "raw results in $out" >&2

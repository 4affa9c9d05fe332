#!/usr/bin/env bash
# Fuzzes the native parsers: builds the targets of test/fuzz/ with ASan+UBSan
# into build-fuzz/ and runs each for a bounded time from its seed corpus
# (test/fuzz/corpus/<target>/, plus the fixture models for the binary ones).
#
#   bash test/fuzz/run.sh [target...]      targets: json config safetensors checkpoint
#   bash test/fuzz/run.sh --make-seeds     regenerate the generated seeds
#   bash test/fuzz/run.sh --repro TARGET FILE...   run saved inputs once
#
# Environment: FUZZ_SECONDS (per target, default 20), FUZZ_TIMEOUT (seconds
# one input may take, default 10), FUZZ_ENGINE (auto | libfuzzer | builtin;
# auto takes libFuzzer when clang++ can link it, else the built-in
# coverage-guided mutator of driver.cpp under g++), FUZZ_SEED, FUZZ_BUILD
# (build folder, default build-fuzz).
# A failure (crash, sanitizer report, hang, abort, an exception other than
# score::Error) saves the input under build-fuzz/artifacts/<target>/ and makes
# the script exit 1 after the summary table.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=test/fuzz
B=${FUZZ_BUILD:-build-fuzz}
secs=${FUZZ_SECONDS:-20}
per_input=${FUZZ_TIMEOUT:-10}
engine=${FUZZ_ENGINE:-auto}
all_targets=(json config safetensors checkpoint)

find_clang() {
  for c in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    if command -v "$c" >/dev/null 2>&1; then
      local t; t=$(mktemp -d)
      printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$t/x.cpp"
      if "$c" -fsanitize=fuzzer,address -o "$t/x" "$t/x.cpp" >/dev/null 2>&1; then rm -rf "$t"; echo "$c"; return; fi
      rm -rf "$t"
    fi
  done
}

cxx=""
if [ "$engine" = auto ] || [ "$engine" = libfuzzer ]; then
  cxx=$(find_clang)
  if [ -n "$cxx" ]; then engine=libfuzzer
  elif [ "$engine" = libfuzzer ]; then echo "run.sh: no clang++ that links -fsanitize=fuzzer" >&2; exit 2
  else engine=builtin; fi
fi
[ -n "$cxx" ] || cxx=${CXX:-g++}

echo "== fuzz: building the targets ($engine engine, $cxx) in $B"
# A folder configured for the other engine or compiler is rebuilt from scratch.
if [ -f "$B/CMakeCache.txt" ] && ! grep -q "^FUZZ_ENGINE:STRING=$engine\$" "$B/CMakeCache.txt"; then rm -rf "$B"; fi
cmake -S "$here" -B "$B" -DFUZZ_ENGINE="$engine" -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
nice cmake --build "$B" -j"${FUZZ_JOBS:-2}" >"$B/build.log" 2>&1 || { cat "$B/build.log"; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:max_allocation_size_mb=2048:allocator_may_return_null=0:abort_on_error=0:symbolize=1}
# (UBSan aborts, so that the engine's abort handler saves the input)
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:abort_on_error=1}
# The targets write each input to a file: on tmpfs when there is one (a disk
# file system flushes a truncated-and-rewritten file on close: 10x slower).
if [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch=$(mktemp -d /dev/shm/score-fuzz.XXXXXX)
else mkdir -p "$B/tmp"; scratch=$(mktemp -d "$PWD/$B/tmp/score-fuzz.XXXXXX"); fi
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"

if [ "${1:-}" = --make-seeds ]; then
  "$B/make_seeds" "$here/corpus"
  exit 0
fi
if [ "${1:-}" = --repro ]; then
  t=$2; shift 2
  exec "$B/fuzz_$t" -timeout="$per_input" "$@"
fi

# Self-test: the engine must report each planted failure of selftest.cpp (an
# exception, an abort, a hang, a heap overflow, UB) and pass a harmless input.
st="$B/selftest"; rm -rf "$st"; mkdir -p "$st"
missed=""
for c in X A H O U ok; do
  printf '%s' "$c" >"$st/in-$c"
  rc=0
  # (in a subshell whose stderr is dropped: bash reports "Aborted" for the planted abort)
  ( timeout 60 "$B/fuzz_selftest" -timeout=2 -artifact_prefix="$st/" "$st/in-$c" >"$st/log-$c" 2>&1 ) 2>/dev/null || rc=$?
  if { [ "$c" = ok ] && [ "$rc" -ne 0 ]; } || { [ "$c" != ok ] && [ "$rc" -eq 0 ]; }; then missed="$missed $c"; fi
done
if [ -n "$missed" ]; then echo "== fuzz: the engine missed planted failures:$missed (logs in $st)"; exit 1; fi
echo "== fuzz: engine self-test: 5 planted failures (exception, abort, hang, overflow, UB) caught"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
status=0
rows=()
for t in "${targets[@]}"; do
  seeds=("$here/corpus/$t")
  case $t in
    safetensors) for m in test/fixtures/models/*/; do seeds+=("$m"); done ;;  # also picks up config.json: harmless
  esac
  work="$B/work/$t"; art="$B/artifacts/$t/"; log="$B/logs/$t.log"
  rm -rf "$work"; mkdir -p "$work" "$art" "$B/logs"
  dict=()
  [ -f "$here/dict/$t.dict" ] && dict=(-dict="$here/dict/$t.dict")
  seed=()
  [ -n "${FUZZ_SEED:-}" ] && seed=(-seed="$FUZZ_SEED")
  echo "== fuzz: $t for ${secs}s"
  start=$(date +%s)
  rc=0
  # The outer timeout only guards against a wedged engine; hangs of one input
  # are caught by -timeout and saved.
  timeout -k 10 $((secs + per_input + 120)) nice "$B/fuzz_$t" -max_total_time="$secs" -timeout="$per_input" \
    -rss_limit_mb=2048 -max_len=262144 -artifact_prefix="$art" -print_final_stats=0 "${dict[@]}" "${seed[@]}" \
    "$work" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  runs=$(sed -n 's/^Done \([0-9]*\) runs in.*/\1/p' "$log" | tail -1)
  nfail=$(find "$art" -type f | wc -l)
  if [ "$rc" -ne 0 ]; then
    [ "$nfail" -gt 0 ] || nfail=1
    status=1
    echo "-- fuzz_$t failed (exit $rc); the end of $log:"
    tail -n 40 "$log"
    for f in "$art"*; do [ -f "$f" ] && echo "   input: $f ($(wc -c <"$f") bytes)"; done
  fi
  rows+=("$(printf '%-12s %12s %8s %9s' "$t" "${runs:-?}" "$took" "$nfail")")
done

echo
echo "== fuzz summary ($engine engine, FUZZ_SECONDS=$secs)"
printf '%-12s %12s %8s %9s\n' target "inputs run" seconds failures
for r in "${rows[@]}"; do echo "$r"; done
exit $status

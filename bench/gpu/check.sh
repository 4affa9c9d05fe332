#!/usr/bin/env bash
# The GPU check of the CUDA backend, for a machine with an NVIDIA GPU, the CUDA
# toolkit, cmake and Python with PyTorch (Node is not needed):
#   1. builds libscore_cuda, the CUDA tests and the benchmark (-DSCORE_CUDA=on, all cores);
#   2. runs the CUDA tests (kernels vs CPU twins, whole model vs the CPU backend, the
#      refusal after a provoked device fault);
#   3. runs bench_cuda and the PyTorch peer (torch_peer.py) on the same card, then the
#      gpt2 training step once more with SCORE_CUDA_ATTENTION=materialising (the reference
#      attention of attention.cu; rows train_materialising_*, beside the default fused one);
#   4. profiles the training step (both attention kernels) and greedy generation (decode
#      steps eager and as CUDA graphs) per kernel through CUPTI (bench_cuda_profile, when
#      the toolkit has CUPTI), prints the top kernels;
#   5. prints a short table LAST.
# Logs go to /tmp/score-gpu-check (or $SCORE_GPU_LOGS); where $OUT is set (the device tool
# brings back at most 8 files from it) they are also packed into $OUT/gpu-logs.tar.gz.
# Usage: bash bench/gpu/check.sh [train_batch]
set -euo pipefail
cd "$(dirname "$0")/../.."
LOGS=${SCORE_GPU_LOGS:-/tmp/score-gpu-check}
mkdir -p "$LOGS"
pack() { [[ -n "${OUT:-}" ]] && tar czf "$OUT/gpu-logs.tar.gz" -C "$LOGS" . || true; }
trap pack EXIT
BATCH=${1:-8}
PROMPT=64
NEW=128

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$LOGS/gpu.txt" || true
start=$SECONDS
build() {  # $1: SCORE_CUBLASLT
  cmake -S . -B build-gpu -DSCORE_CUDA=on -DSCORE_CUBLASLT="$1" -DCMAKE_BUILD_TYPE=Release \
    > "$LOGS/configure.log" 2>&1 &&
  cmake --build build-gpu -j"$(nproc)" --target score_cuda test_cuda_kernels test_cuda_model test_cuda_fault bench_cuda \
    > "$LOGS/build.log" 2>&1
}
if ! build ON; then
  # The cuBLASLt path cannot be compiled on machines without cuBLAS; never lose the run to it.
  echo "build with cuBLASLt FAILED; retrying without it:"; grep -m 5 error "$LOGS/build.log" || true
  cp "$LOGS/build.log" "$LOGS/build-cublaslt.log"
  build OFF || { tail -n 40 "$LOGS/build.log"; exit 1; }
fi
# The CUPTI profiler is a target only where the toolkit has CUPTI; its absence costs nothing else.
cmake --build build-gpu -j"$(nproc)" --target bench_cuda_profile > "$LOGS/build-profile.log" 2>&1 ||
  echo "bench_cuda_profile not built (no CUPTI?): no per-kernel profile"
grep -h "score_cuda: with" "$LOGS/configure.log" || true
echo "build: $((SECONDS - start)) s"

status=0
for t in test_cuda_kernels test_cuda_model test_cuda_fault; do  # the fault test: its own process
  if timeout 150 "./build-gpu/$t" > "$LOGS/$t.log" 2>&1; then echo "$t: passed"; else
    echo "$t: FAILED"; status=1; fi
  grep -E "^(ok|FAIL|skip)|passed|failed|skipped|  " "$LOGS/$t.log" | head -n 60 || true
done
# The model tests once more with the reference kernels as the defaults (materialising
# attention, host sampler).
if SCORE_CUDA_ATTENTION=materialising SCORE_CUDA_SAMPLING=host timeout 150 ./build-gpu/test_cuda_model \
    > "$LOGS/test_cuda_model_reference.log" 2>&1; then echo "test_cuda_model (materialising, host sampling): passed"
else echo "test_cuda_model (materialising, host sampling): FAILED"; status=1; fi
grep -E "^(FAIL|skip)|passed|failed" "$LOGS/test_cuda_model_reference.log" | head -n 30 || true

timeout 200 ./build-gpu/bench_cuda "$BATCH" "$PROMPT" "$NEW" > "$LOGS/bench.log" 2>&1 || {
  echo "bench_cuda failed"; tail -n 20 "$LOGS/bench.log"; status=1; }
# The same training step with the reference attention.
SCORE_CUDA_ATTENTION=materialising timeout 120 ./build-gpu/bench_cuda "$BATCH" "$PROMPT" "$NEW" train \
  > "$LOGS/bench_materialising.log" 2>&1 || { echo "bench_cuda (materialising attention) failed"; tail -n 20 "$LOGS/bench_materialising.log"; status=1; }
timeout 200 python3 bench/gpu/torch_peer.py "$BATCH" "$PROMPT" "$NEW" > "$LOGS/torch.log" 2>&1 || {
  echo "torch_peer failed"; tail -n 20 "$LOGS/torch.log"; status=1; }

# Where the training step's GPU time goes (a diagnostic: a failure here fails nothing).
if [[ -x ./build-gpu/bench_cuda_profile ]]; then
  timeout 90 ./build-gpu/bench_cuda_profile "$BATCH" "$PROMPT" "$NEW" profile > "$LOGS/profile.log" 2>&1 ||
    { echo "profile failed:"; tail -n 5 "$LOGS/profile.log"; }
  SCORE_CUDA_ATTENTION=materialising timeout 90 ./build-gpu/bench_cuda_profile "$BATCH" "$PROMPT" "$NEW" profile \
    > "$LOGS/profile_materialising.log" 2>&1 || { echo "profile (materialising) failed:"; tail -n 5 "$LOGS/profile_materialising.log"; }
  show() {  # $1 log, $2 part, $3 what, $4 lines
    grep -q "^PROFILE $2 " "$LOGS/$1.log" 2>/dev/null || return 0
    echo; echo "$1: GPU time per $3 by kernel (ms, share, calls), top $4"
    grep "^PROFILE $2 " "$LOGS/$1.log" | head -n "$4" | cut -d' ' -f3- || true
  }
  show profile train "training step" 14
  show profile_materialising train "training step" 8
  show profile gen "decode step (greedy, batch 64)" 10
  show profile gen_graph "decode step (greedy, batch 64, CUDA graph)" 6
fi

git rev-parse --short HEAD 2>/dev/null > "$LOGS/commit.txt" || echo "${SCORE_COMMIT:-unknown}" > "$LOGS/commit.txt"  # the device copy has no .git
python3 - "$LOGS" <<'PY'
import sys, pathlib
d = pathlib.Path(sys.argv[1])
def read(f):
    r = {}
    p = d / f
    if p.exists():
        for line in p.read_text().splitlines():
            if line.startswith("RESULT "):
                _, k, v = line.split(None, 2)
                r[k.removeprefix("torch_")] = v
    return r
ours, torch = read("bench.log"), read("torch.log")
for extra in ("bench_materialising.log", "profile.log", "profile_materialising.log"):
    ours.update({k: v for k, v in read(extra).items() if k not in ours})
gpu = (d / "gpu.txt").read_text().strip() if (d / "gpu.txt").exists() else "?"
rows = [k for k in ours if k.endswith(("tflops", "tokens_per_s", "mfu_percent", "_ms")) and k != "peak_bf16_tflops"]
print()
print(f"GPU: {gpu}   commit: {(d / 'commit.txt').read_text().strip()}   train batch: {ours.get('train_batch', '?')} x 1024")
print("ratio = score-rl speed / pytorch speed (above 1: score-rl is faster); _lt = the same product through cuBLASLt")
print(f"| {'metric':42} | {'score-rl':>10} | {'pytorch':>10} | {'ratio':>6} |")
print(f"|{'-' * 44}|{'-' * 12}|{'-' * 12}|{'-' * 8}|")
for k in rows:
    a, b = ours.get(k), torch.get(k, torch.get(k.replace("materialising_", "").replace("_graph", "")))  # vs the same peer row
    ratio = ""
    try:
        x, y = float(a), float(b)
        ratio = f"{(y / x if k.endswith('_ms') else x / y):.2f}" if y else ""
    except (TypeError, ValueError):
        pass
    print(f"| {k:42} | {a or '-':>10} | {b or '-':>10} | {ratio:>6} |")
PY
exit $status

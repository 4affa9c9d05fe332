#!/usr/bin/env bash
# CPU emulation of the CUDA backend (no GPU or nvcc needed; g++ >= 11, x86-64): CUDA
# threads run as fibers with barriers for __syncthreads, __syncwarp, shuffles, ballots,
# mma.sync and ldmatrix (prelude.h); host/ holds shim headers for the runtime API, bf16 and
# wmma.
#   backend:  every native/cuda/*.cu rewritten for the host (translate.py), and the CUDA
#             kernel and model tests (test/native/test_cuda_{kernels,model}.cpp) run
#             against the CPU twins, through CMake (-DSCORE_CUDA_EMULATION=ON; ctest runs
#             the same two tests in CI). About 1 minute to build and 30 s to run.
#   sampling: the device sampler (sampling.cu, sample_rows) against cpu::sample_row.
# Usage: bash bench/gpu/emulate/run.sh [backend|sampling]   (default: both)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
what="${1:-all}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/prelude.h" "$here/sampling_main.cpp" "$work/"
status=0
if [[ "$what" == all || "$what" == backend ]]; then
  cmake -S "$root" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DSCORE_CUDA=off -DSCORE_CUDA_EMULATION=ON >/dev/null
  cmake --build "$work/build" -j"$(nproc)" --target emu_test_cuda_kernels emu_test_cuda_model >/dev/null
  (cd "$root" && "$work/build/emu_test_cuda_kernels" && "$work/build/emu_test_cuda_model") || status=1
fi
if [[ "$what" == all || "$what" == sampling ]]; then
  python3 "$here/gen_sampling.py" "$root" "$work/sampling_emu.h"
  g++ -std=c++20 -O2 -pthread -fopenmp -I"$root/native/include" -I"$root/native" \
    "$work/sampling_main.cpp" "$root/native/cpu/sampling.cpp" -o "$work/emulate_sampling"
  "$work/emulate_sampling" || status=1
fi
exit $status

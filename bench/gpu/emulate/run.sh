#!/usr/bin/env bash
# CPU emulation of CUDA kernels that were written without a GPU at hand (no GPU needed;
# g++ >= 11 for C++20 std::barrier): one host thread per CUDA thread, barriers for
# __syncthreads, __syncwarp, shuffles, ballots and mma.sync (prelude.h).
#   - flash attention (native/cuda/attention_flash.cu) against a double reference;
#   - the device sampler (native/cuda/sampling.cu, sample_rows) against cpu::sample_row.
# A few minutes on two cores. Usage: bash bench/gpu/emulate/run.sh [flash|sampling]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
what="${1:-all}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/prelude.h" "$here/main.cpp" "$here/sampling_main.cpp" "$work/"
status=0
if [[ "$what" == all || "$what" == flash ]]; then
  python3 "$here/gen.py" "$root" "$work/kernel_emu.h"
  g++ -std=c++20 -O2 -pthread "$work/main.cpp" -o "$work/emulate_flash"
  "$work/emulate_flash" || status=1
fi
if [[ "$what" == all || "$what" == sampling ]]; then
  python3 "$here/gen_sampling.py" "$root" "$work/sampling_emu.h"
  g++ -std=c++20 -O2 -pthread -fopenmp -I"$root/native/include" -I"$root/native" \
    "$work/sampling_main.cpp" "$root/native/cpu/sampling.cpp" -o "$work/emulate_sampling"
  "$work/emulate_sampling" || status=1
fi
exit $status

#!/usr/bin/env bash
# CPU emulation of the flash attention kernels (no GPU needed; g++ >= 11 for C++20
# std::barrier): one host thread per CUDA thread, barriers for __syncthreads, __syncwarp,
# shuffles and mma.sync. Takes about a minute. Usage: bash bench/gpu/emulate/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 "$here/gen.py" "$root" "$work/kernel_emu.h"
cp "$here/prelude.h" "$here/main.cpp" "$work/"
g++ -std=c++20 -O2 -pthread "$work/main.cpp" -o "$work/emulate_flash"
"$work/emulate_flash"

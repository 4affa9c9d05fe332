# Extracts the kernels of attention_flash.cu (everything before the launchers) for the
# host emulation: the shared-memory declaration points at the emulated block's buffer and
# the mma.sync asm becomes emu::mma. Usage: gen.py <repo root> <output header>
import re, sys
s = open(sys.argv[1] + '/native/cuda/attention_flash.cu').read()
a = s.index('namespace score::cuda {')
b = s.index('template <typename E, int D>\nvoid launch_forward')
body = s[a:b] + '}  // namespace\n}  // namespace score::cuda\n'
body = body.replace('extern __shared__ __align__(16) unsigned char smem_raw[];', 'unsigned char* smem_raw = ::emu::smem;')
body, n = re.subn(r'asm volatile\(.*?"r"\(b\[1\]\)\);', '::emu::mma(c, a, b);', body, flags=re.S)
assert n == 1, n
red = open(sys.argv[1] + '/native/cuda/reduce.cuh').read().replace('#pragma once', '')
open(sys.argv[2], 'w').write('#pragma once\n#include "prelude.h"\n#include <cfloat>\n' + red + '\n' + body)

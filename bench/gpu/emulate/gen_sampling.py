# Extracts the kernels of sampling.cu (the anonymous namespace) and the declarations of
# sampling.h for the host emulation (see prelude.h). Usage: gen_sampling.py <repo root> <output>
import sys
root = sys.argv[1]
s = open(root + '/native/cuda/sampling.cu').read()
a = s.index('namespace score::cuda {\nnamespace {')
b = s.index('}  // namespace\n\nvoid greedy_rows(')
body = s[a:b] + '}  // namespace\n'
# the host helpers (not the launcher)
c = s.index('DeviceSamplingParams device_sampling_params(')
d = s.index('void sample_rows(', c)
body += s[c:d] + '}  // namespace score::cuda\n'
body = body.replace('extern __shared__ double seg[];', 'double* seg = reinterpret_cast<double*>(::emu::smem);')
assert 'extern __shared__' not in body
h = open(root + '/native/cuda/sampling.h').read().replace('#include <cuda_runtime_api.h>', '').replace('#pragma once', '')
red = open(root + '/native/cuda/reduce.cuh').read().replace('#pragma once', '')
open(sys.argv[2], 'w').write('#pragma once\n#include "prelude.h"\n#include <cfloat>\n' + red + '\n' + h + '\n' + body)

// bf16 types and conversions: in prelude.h.
#pragma once
#include "cuda_runtime_api.h"
inline float __bfloat162float(__nv_bfloat16 h) { return bf2f(h.x); }

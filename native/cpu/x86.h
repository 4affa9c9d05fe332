// <immintrin.h> for the files with AVX-512 kernels (compiled with target attributes and
// chosen at run time), and SCORE_X86 where x86 intrinsics exist.
//
// GCC 12 warns (falsely) about _mm512_undefined_ps inside the AVX-512 intrinsics when they
// are inlined into target("avx512f") functions (GCC PR105593); the suppression covers only
// the header's lines.
#pragma once

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define SCORE_X86 1
#endif

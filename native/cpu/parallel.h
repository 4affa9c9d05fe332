// OpenMP regions that are skipped, not merely made single-threaded, when they do not pay.
//
// `#pragma omp parallel if (false)` is not free: libgomp still builds a team of one and
// releases its barrier with a futex syscall. On this project's VM that is 1.4 us per call,
// 3.3 us from inside another region (bench/results/2026-11-27-cpu-session4.md); a decode
// step's per-head products in attention made hundreds of such calls, about 1 ms a step.
// These helpers run the body on the calling thread instead, with no OpenMP call at all.
//
// Inside an active parallel region both run serially, as a nested `if (par)` region did
// (nesting is off). The bodies must not contain orphaned worksharing constructs (`omp
// for`, `omp single`): called serially from inside another region, those would bind to
// the outer team. A barrier is allowed only when nth > 1.
#pragma once

#include <omp.h>

namespace score::cpu {

// body(i) for i in [0, n): split statically over a team when `par`, else in order here.
template <typename Index, typename Body>
inline void parallel_for(Index n, bool par, const Body& body) {
  if (par && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (Index i = 0; i < n; ++i) body(i);
  } else {
    for (Index i = 0; i < n; ++i) body(i);
  }
}

// body(nth, tid) on every thread of a team when `par`, else body(1, 0) here.
template <typename Body>
inline void parallel_team(bool par, const Body& body) {
  if (par && !omp_in_parallel()) {
#pragma omp parallel
    body(omp_get_num_threads(), omp_get_thread_num());
  } else {
    body(1, 0);
  }
}

}  // namespace score::cpu

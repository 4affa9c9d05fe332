// Per-kernel GPU time of a stretch of work, from CUPTI's activity records (the records
// Nsight Systems reads), for bench_cuda's "profile" mode: which kernels a training step
// spends its time in, without nsys on the machine. Every kernel, memset and memcpy in the
// process is recorded, including cuBLASLt's and those of libscore_cuda (CUPTI works at
// the driver level, below each library's statically linked runtime).
//
// Built with CUPTI when CMake finds it in the toolkit (SCORE_HAVE_CUPTI); otherwise
// available() is false and start() throws.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

namespace score_bench {

struct KernelTime {
  std::string name;  // demangled, without the parameter list; "[memset]", "[memcpy HtoD]", ...
  double ms = 0;     // total GPU time
  long calls = 0;
};

bool kernel_profile_available();
// Starts recording (one profile at a time in a process: CUPTI's buffer callbacks carry
// no user pointer, so the records are gathered in one file-level table).
void kernel_profile_start();
// Waits for the device, flushes the records, stops, and returns the table, longest first.
std::vector<KernelTime> kernel_profile_stop();

}  // namespace score_bench

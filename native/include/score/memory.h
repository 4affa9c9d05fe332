// Memory checks before large allocations: a model or batch too large fails with an
// estimate instead of an allocation failure (or the OOM killer) halfway through.
#pragma once
#include <cstddef>
#include <string>

namespace score {

// Bytes this process can still allocate: MemAvailable of /proc/meminfo, bounded by the
// cgroup (v2) limit, or SCORE_MEMORY_LIMIT (bytes, or with a K/M/G suffix) when set.
// SIZE_MAX when nothing is known.
size_t available_memory();

// Throws OutOfMemory "<what> needs <need>, but only <available> is available" when the
// estimate does not fit.
void check_memory(size_t need, const std::string& what);

// "1.5 GiB", "300 MiB", "12 KiB"
std::string format_bytes(size_t bytes);

}  // namespace score

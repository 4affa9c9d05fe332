#include "score/memory.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>

#include "score/errors.h"

namespace score {
namespace {

// "123", "64M", "2G" -> bytes; SIZE_MAX when unparsable.
size_t parse_size(const char* s) {
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (end == s || !(v >= 0)) return SIZE_MAX;
  double mult = 1;
  switch (*end) {
    case 'k': case 'K': mult = 1024.0; break;
    case 'm': case 'M': mult = 1024.0 * 1024; break;
    case 'g': case 'G': mult = 1024.0 * 1024 * 1024; break;
    default: break;
  }
  const double bytes = v * mult;
  return bytes >= static_cast<double>(SIZE_MAX) ? SIZE_MAX : static_cast<size_t>(bytes);
}

size_t read_number(const char* path) {
  std::ifstream f(path);
  std::string s;
  if (!(f >> s) || s == "max") return SIZE_MAX;
  return parse_size(s.c_str());
}

size_t mem_available() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  size_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return SIZE_MAX;
}

}  // namespace

size_t available_memory() {
  if (const char* lim = std::getenv("SCORE_MEMORY_LIMIT"); lim && *lim) return parse_size(lim);
  size_t avail = mem_available();
  const size_t max = read_number("/sys/fs/cgroup/memory.max");
  const size_t cur = read_number("/sys/fs/cgroup/memory.current");
  if (max != SIZE_MAX && cur != SIZE_MAX) avail = std::min(avail, max > cur ? max - cur : 0);
  return avail;
}

std::string format_bytes(size_t b) {
  const double x = static_cast<double>(b);
  char buf[32];
  if (x >= 1099511627776.0) std::snprintf(buf, sizeof buf, "%.1f TiB", x / 1099511627776.0);
  else if (x >= 1073741824.0) std::snprintf(buf, sizeof buf, "%.1f GiB", x / 1073741824.0);
  else if (x >= 1048576.0) std::snprintf(buf, sizeof buf, "%.0f MiB", x / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%.0f KiB", x / 1024.0);
  return buf;
}

void check_memory(size_t need, const std::string& what) {
  const size_t avail = available_memory();
  if (need > avail)
    throw Error(ErrorCode::OutOfMemory, what + " needs about " + format_bytes(need) + ", but only " +
                                            format_bytes(avail) + " is available");
}

}  // namespace score

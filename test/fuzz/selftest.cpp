// A target with planted bugs, for run.sh's self-test of the fuzz engine: each
// input's first byte picks one, and the engine must report every one of them
// as a failure (and pass the harmless input).
//   X: an exception that is not score::Error   A: abort()
//   H: a hang                                  O: a heap buffer overflow
//   U: signed integer overflow (UBSan)         anything else: fine
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {
  if (n == 0) return 0;
  switch (d[0]) {
    case 'X': throw std::runtime_error("not a score::Error");
    case 'A': std::abort();
    case 'H':
      for (;;) ::sleep(1);
    case 'O': {
      volatile char* p = static_cast<char*>(std::malloc(4));
      p[n + 8] = 1;
      std::free(const_cast<char*>(p));
      break;
    }
    case 'U': {
      volatile int x = 0x7fffffff;
      volatile int y = x + static_cast<int>(n);
      (void)y;
      break;
    }
    default: break;
  }
  return 0;
}

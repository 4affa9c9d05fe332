// A small, explicit random number generator (xoshiro256**, seeded through
// splitmix64). Every consumer owns its generator; no global state, and the
// same seed gives the same stream on every platform.
#pragma once
#include <cmath>
#include <cstdint>

namespace score {

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : s_) {
      seed += 0x9e3779b97f4a7c15ull;  // splitmix64
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s = z ^ (z >> 31);
    }
  }
  uint64_t next_u64() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // uniform in [0, 1) with 53 random bits
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // standard normal (Box-Muller; one value per call keeps the state simple)
  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // The whole state, for checkpoints.
  void get_state(uint64_t out[4]) const { for (int i = 0; i < 4; i++) out[i] = s_[i]; }
  void set_state(const uint64_t in[4]) { for (int i = 0; i < 4; i++) s_[i] = in[i]; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace score

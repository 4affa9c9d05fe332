// A small coverage-guided mutation fuzzer for the fuzz targets when libFuzzer
// (clang) is not available: link it with a target's LLVMFuzzerTestOneInput and
// build the code under test with g++ -fsanitize=address,undefined
// -fsanitize-coverage=trace-pc (this file itself without coverage).
//
// Command line (a subset of libFuzzer's, so run.sh drives both the same way):
//   fuzz_x [-max_total_time=S] [-runs=N] [-timeout=S] [-seed=N] [-max_len=N]
//          [-artifact_prefix=DIR/] [-dict=FILE] [other -flag=value ignored]
//          CORPUS_DIR... | INPUT_FILE...
// With directories: load every file in them as the seed corpus, run each
// seed, then mutate until the time or run budget is spent. Inputs that reach
// new code (edge hit-count buckets, AFL style) join the corpus in memory.
// With files: run each once (to reproduce a failure) and exit.
//
// Failures: a sanitizer report (the death callback saves the input), an abort
// or other fatal signal, an input that runs longer than -timeout seconds, or
// an exception escaping the target. Each saves the input as
// <artifact_prefix>crash-<hash> (timeout-<hash> for hangs), prints the input's
// first bytes, and exits 1. The last line on success is libFuzzer's
// "Done N runs in S second(s)".
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <typeinfo>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" void __sanitizer_set_death_callback(void (*callback)(void));

// ------------------------------------------------------------- coverage

namespace {
constexpr size_t kMapSize = 1 << 16;
uint8_t g_hits[kMapSize];    // this input's edge hit counts
uint8_t g_virgin[kMapSize];  // bucket bits seen so far, over all inputs
thread_local uintptr_t g_prev = 0;
bool g_tracing = false;
}  // namespace

// Called by -fsanitize-coverage=trace-pc at every basic block of the code
// under test. Edges are (previous block, this block) pairs, hashed.
extern "C" void __sanitizer_cov_trace_pc() {
  if (!g_tracing) return;
  uintptr_t pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  uintptr_t cur = (pc ^ (pc >> 15) ^ (pc >> 31)) * 0x9E3779B97F4A7C15ull >> 48;
  g_hits[(cur ^ g_prev) & (kMapSize - 1)]++;
  g_prev = cur >> 1;
}

namespace {

// ------------------------------------------------------------- options

struct Options {
  double max_total_time = 0;  // 0: no limit
  long long runs = -1;        // -1: no limit
  unsigned timeout = 10;      // seconds per input
  uint64_t seed = 0;
  size_t max_len = 1 << 20;
  std::string artifact_prefix = "./";
  std::string dict;
  std::vector<std::string> paths;
};

// ------------------------------------------------------------- failure handling

std::vector<uint8_t> g_current;  // the input being run
const char* g_artifact_prefix = "./";
const char* g_kind = "crash";

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// Saves g_current as an artifact and describes it; async-signal-safe enough
// for a process that is about to die (write/open only, a static buffer).
void save_artifact() {
  static char path[4096];
  static const char hex[] = "0123456789abcdef";
  uint64_t h = fnv1a(g_current.data(), g_current.size());
  size_t n = 0;
  for (const char* s = g_artifact_prefix; *s && n < 4000; s++) path[n++] = *s;
  for (const char* s = g_kind; *s && n < 4050; s++) path[n++] = *s;
  path[n++] = '-';
  for (int i = 15; i >= 0; i--) path[n++] = hex[(h >> (4 * i)) & 15];
  path[n] = 0;
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    size_t off = 0;
    while (off < g_current.size()) {
      ssize_t w = ::write(fd, g_current.data() + off, g_current.size() - off);
      if (w <= 0) break;
      off += static_cast<size_t>(w);
    }
    ::close(fd);
  }
  const char* a = "\n==FUZZ== failing input saved to ";
  (void)!::write(2, a, std::strlen(a));
  (void)!::write(2, path, std::strlen(path));
  (void)!::write(2, "\n", 1);
}

void on_death() { save_artifact(); }

void on_signal(int sig) {
  if (sig == SIGALRM) {
    g_kind = "timeout";
    const char* m = "\n==FUZZ== timeout: one input ran longer than the per-input limit\n";
    (void)!::write(2, m, std::strlen(m));
  } else {
    const char* m = "\n==FUZZ== deadly signal\n";
    (void)!::write(2, m, std::strlen(m));
  }
  save_artifact();
  ::_exit(1);
}

void on_terminate() {
  const char* m = "\n==FUZZ== std::terminate (an exception escaped or noexcept was violated)\n";
  (void)!::write(2, m, std::strlen(m));
  save_artifact();
  ::_exit(1);
}

// Runs one input under the per-input alarm; returns true when it reached new
// coverage.
bool run_one(const std::vector<uint8_t>& input, unsigned timeout) {
  g_current = input;
  std::memset(g_hits, 0, sizeof g_hits);
  g_prev = 0;
  ::alarm(timeout);
  g_tracing = true;
  try {
    LLVMFuzzerTestOneInput(g_current.data(), g_current.size());
  } catch (const std::exception& e) {
    g_tracing = false;
    std::fprintf(stderr, "\n==FUZZ== uncaught exception %s: %s\n", typeid(e).name(), e.what());
    save_artifact();
    std::exit(1);
  } catch (...) {
    g_tracing = false;
    std::fprintf(stderr, "\n==FUZZ== uncaught exception of unknown type\n");
    save_artifact();
    std::exit(1);
  }
  g_tracing = false;
  ::alarm(0);
  // AFL's hit-count buckets: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+.
  bool fresh = false;
  for (size_t i = 0; i < kMapSize; i++) {
    uint8_t c = g_hits[i];
    if (!c) continue;
    uint8_t b = c == 1 ? 1 : c == 2 ? 2 : c == 3 ? 4 : c < 8 ? 8 : c < 16 ? 16 : c < 32 ? 32 : c < 128 ? 64 : 128;
    if (!(g_virgin[i] & b)) {
      g_virgin[i] |= b;
      fresh = true;
    }
  }
  return fresh;
}

// ------------------------------------------------------------- mutation

struct Rng {
  uint64_t s;
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }
  bool chance(unsigned pct) { return below(100) < pct; }
};

// Positions are biased towards the front: headers, length fields and
// config.json come first in every target's input, bulk tensor data last.
size_t pick_pos(Rng& r, size_t n) {
  if (n == 0) return 0;
  if (r.chance(50)) {
    double u = static_cast<double>(r.next() >> 11) / 9007199254740992.0;
    return std::min(n - 1, static_cast<size_t>(u * u * u * static_cast<double>(n)));
  }
  return r.below(n);
}

const char* const kJsonNumbers[] = {
    "0", "-0", "1", "-1", "2", "3", "7", "8", "64", "65", "255", "256", "4096", "4097", "65535", "16777216",
    "16777217", "2147483647", "2147483648", "-2147483648", "4294967295", "4294967296", "9007199254740992",
    "9007199254740993", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "18446744073709551616", "1e308", "1e309", "-1e309",
    "1e-400", "4.9e-324", "1.5", "2.0", "1e3", "1E+2", "0.5e1", "1e-6", "-1e-5", "1e0", "0e0",
    "123456789012345678901234567890", "1.0000000000000000001", "1e2147483648"};

const char* const kJsonTokens[] = {
    "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800", "\\udc00", "\\ud83d\\ude00", "\\u0000",
    "null", "true", "false", "{}", "[]", "\"\"", "[[[[[[[[", "]]]]]]]]", "{\"a\":", "\xc3\xa9", "\xed\xa0\x80",
    "\xf4\x90\x80\x80", "\xc0\x80", "\xff", " ", "\n", "\t", "/*", "NaN", "Infinity", "-", "."};

// Replace a maximal run of number characters at or after pos with another number.
bool replace_number(std::vector<uint8_t>& d, size_t pos, const std::string& with) {
  auto numch = [](uint8_t c) { return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'; };
  size_t i = pos;
  while (i < d.size() && !(d[i] >= '0' && d[i] <= '9')) i++;
  if (i >= d.size()) return false;
  size_t b = i, e = i;
  while (b > 0 && numch(d[b - 1])) b--;
  while (e < d.size() && numch(d[e])) e++;
  d.erase(d.begin() + static_cast<long>(b), d.begin() + static_cast<long>(e));
  d.insert(d.begin() + static_cast<long>(b), with.begin(), with.end());
  return true;
}

// Replace the string literal at or after pos (its contents) with `with`.
bool replace_string(std::vector<uint8_t>& d, size_t pos, const std::string& with) {
  size_t i = pos;
  while (i < d.size() && d[i] != '"') i++;
  if (i >= d.size()) return false;
  size_t e = i + 1;
  while (e < d.size() && d[e] != '"') e += d[e] == '\\' ? 2 : 1;
  if (e >= d.size()) return false;
  d.erase(d.begin() + static_cast<long>(i + 1), d.begin() + static_cast<long>(e));
  d.insert(d.begin() + static_cast<long>(i + 1), with.begin(), with.end());
  return true;
}

void mutate(std::vector<uint8_t>& d, const std::vector<std::vector<uint8_t>>& corpus,
            const std::vector<std::string>& dict, Rng& r, size_t max_len) {
  int rounds = 1 + static_cast<int>(r.below(r.chance(70) ? 3 : 8));
  for (int k = 0; k < rounds; k++) {
    const size_t n = d.size();
    switch (r.below(16)) {
      case 0:  // flip a bit
        if (n) d[pick_pos(r, n)] ^= static_cast<uint8_t>(1u << r.below(8));
        break;
      case 1: {  // set a byte: random or interesting
        static const uint8_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, '"', '{', '}', '[', ']', ',', ':',
                                              '\\', '0', '9', '-', 'e', '.', ' ', '\n'};
        if (n) d[pick_pos(r, n)] = r.chance(50) ? static_cast<uint8_t>(r.next()) : interesting[r.below(sizeof interesting)];
        break;
      }
      case 2: {  // insert random bytes
        size_t m = 1 + r.below(8), at = pick_pos(r, n + 1);
        for (size_t i = 0; i < m; i++) d.insert(d.begin() + static_cast<long>(at), static_cast<uint8_t>(r.next()));
        break;
      }
      case 3: {  // delete a range
        if (!n) break;
        size_t at = pick_pos(r, n), m = 1 + r.below(std::min<size_t>(n - at, r.chance(80) ? 16 : 4096));
        d.erase(d.begin() + static_cast<long>(at), d.begin() + static_cast<long>(at + m));
        break;
      }
      case 4: {  // duplicate a range somewhere else (repeats keys, tensors, nesting)
        if (!n) break;
        size_t at = pick_pos(r, n), m = 1 + r.below(std::min<size_t>(n - at, 256));
        std::vector<uint8_t> chunk(d.begin() + static_cast<long>(at), d.begin() + static_cast<long>(at + m));
        size_t to = pick_pos(r, n + 1);
        d.insert(d.begin() + static_cast<long>(to), chunk.begin(), chunk.end());
        break;
      }
      case 5: {  // splice: a prefix of this input and a suffix of another
        const std::vector<uint8_t>& o = corpus[r.below(corpus.size())];
        size_t a = pick_pos(r, n + 1), b = pick_pos(r, o.size() + 1);
        d.resize(a);
        d.insert(d.end(), o.begin() + static_cast<long>(b), o.end());
        break;
      }
      case 6: {  // insert a chunk of another input
        const std::vector<uint8_t>& o = corpus[r.below(corpus.size())];
        if (o.empty()) break;
        size_t b = pick_pos(r, o.size()), m = 1 + r.below(std::min<size_t>(o.size() - b, 512));
        d.insert(d.begin() + static_cast<long>(pick_pos(r, n + 1)), o.begin() + static_cast<long>(b),
                 o.begin() + static_cast<long>(b + m));
        break;
      }
      case 7:
      case 8: {  // insert or overwrite with a dictionary / JSON token
        std::string t = !dict.empty() && r.chance(60) ? dict[r.below(dict.size())]
                                                      : kJsonTokens[r.below(sizeof kJsonTokens / sizeof *kJsonTokens)];
        size_t at = pick_pos(r, n + 1);
        if (r.chance(50) && at + t.size() <= n) std::copy(t.begin(), t.end(), d.begin() + static_cast<long>(at));
        else d.insert(d.begin() + static_cast<long>(at), t.begin(), t.end());
        break;
      }
      case 9:
      case 10:  // a JSON number -> an interesting one
        replace_number(d, pick_pos(r, n + 1), kJsonNumbers[r.below(sizeof kJsonNumbers / sizeof *kJsonNumbers)]);
        break;
      case 11: {  // a JSON number -> itself +- small
        size_t at = pick_pos(r, n + 1);
        long long v = static_cast<long long>(r.below(9)) - 4;
        replace_number(d, at, std::to_string(v + static_cast<long long>(r.below(70000))));
        break;
      }
      case 12: {  // a string literal -> a dictionary word or junk
        std::string t = !dict.empty() && r.chance(70) ? dict[r.below(dict.size())] : std::string(r.below(4), 'x');
        if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = t.substr(1, t.size() - 2);
        replace_string(d, pick_pos(r, n + 1), t);
        break;
      }
      case 13: {  // overwrite a little-endian u64 (the safetensors header length, usually at 0)
        if (n < 8) break;
        size_t at = r.chance(60) ? 0 : pick_pos(r, n - 7);
        uint64_t cur = 0;
        for (int i = 7; i >= 0; i--) cur = (cur << 8) | d[at + i];
        static const uint64_t special[] = {0, 1, 2, 7, 8, 0xffffffffull, 0x100000000ull, 0x7fffffffffffffffull,
                                           0x8000000000000000ull, ~0ull, 100ull << 20, (100ull << 20) + 1};
        uint64_t v;
        switch (r.below(3)) {
          case 0: v = special[r.below(sizeof special / sizeof *special)]; break;
          case 1: v = cur + r.below(33) - 16; break;
          default: v = static_cast<uint64_t>(n) - 8 + r.below(5) - 2; break;
        }
        for (int i = 0; i < 8; i++) d[at + i] = static_cast<uint8_t>(v >> (8 * i));
        break;
      }
      case 14:  // truncate
        if (n) d.resize(pick_pos(r, n));
        break;
      default: {  // swap two ranges' bytes
        if (n < 2) break;
        size_t a = pick_pos(r, n), b = pick_pos(r, n);
        std::swap(d[a], d[b]);
        break;
      }
    }
  }
  if (d.size() > max_len) d.resize(max_len);
}

// ------------------------------------------------------------- files

bool read_whole(const std::string& path, std::vector<uint8_t>* out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  out->clear();
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->insert(out->end(), buf, buf + n);
  std::fclose(f);
  return true;
}

bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void list_dir(const std::string& dir, std::vector<std::string>* out) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    std::string p = dir + "/" + n;
    if (is_dir(p)) list_dir(p, out);
    else names.push_back(p);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  out->insert(out->end(), names.begin(), names.end());
}

// libFuzzer dictionary lines: optional name=, then "quoted value" with \\, \" and \xNN escapes.
std::vector<std::string> load_dict(const std::string& path) {
  std::vector<std::string> out;
  std::vector<uint8_t> bytes;
  if (path.empty() || !read_whole(path, &bytes)) return out;
  std::string text(bytes.begin(), bytes.end());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    size_t q = line.find('"'), e = line.rfind('"');
    if (line.empty() || line[0] == '#' || q == std::string::npos || e <= q) continue;
    std::string v;
    for (size_t i = q + 1; i < e; i++) {
      if (line[i] == '\\' && i + 1 < e) {
        char c = line[++i];
        if (c == 'x' && i + 2 < e) {
          v += static_cast<char>(std::stoi(line.substr(i + 1, 2), nullptr, 16));
          i += 2;
        } else {
          v += c;
        }
      } else {
        v += line[i];
      }
    }
    out.push_back(v);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&](const char* flag) -> const char* {
      size_t n = std::strlen(flag);
      return a.compare(0, n, flag) == 0 ? a.c_str() + n : nullptr;
    };
    if (const char* v = val("-max_total_time=")) o.max_total_time = std::atof(v);
    else if (const char* v = val("-runs=")) o.runs = std::atoll(v);
    else if (const char* v = val("-timeout=")) o.timeout = static_cast<unsigned>(std::max(1, std::atoi(v)));
    else if (const char* v = val("-seed=")) o.seed = std::strtoull(v, nullptr, 10);
    else if (const char* v = val("-max_len=")) o.max_len = std::strtoull(v, nullptr, 10);
    else if (const char* v = val("-artifact_prefix=")) o.artifact_prefix = v;
    else if (const char* v = val("-dict=")) o.dict = v;
    else if (a.size() > 1 && a[0] == '-') continue;  // other libFuzzer flags
    else o.paths.push_back(a);
  }
  if (o.seed == 0) o.seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) | 1;
  g_artifact_prefix = o.artifact_prefix.c_str();
  __sanitizer_set_death_callback(on_death);
  std::set_terminate(on_terminate);
  for (int sig : {SIGALRM, SIGABRT, SIGFPE, SIGILL, SIGBUS})
    ::signal(sig, on_signal);  // SIGSEGV stays with ASan, whose report ends in on_death

  std::vector<std::string> files;
  bool reproduce = false;
  for (const std::string& p : o.paths) {
    if (is_dir(p)) {
      list_dir(p, &files);
    } else {
      files.push_back(p);
      reproduce = true;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  long long runs = 0;

  std::vector<std::vector<uint8_t>> corpus;
  for (const std::string& f : files) {
    std::vector<uint8_t> bytes;
    if (!read_whole(f, &bytes)) {
      std::fprintf(stderr, "cannot read %s\n", f.c_str());
      return 2;
    }
    if (bytes.size() > o.max_len) bytes.resize(o.max_len);
    run_one(bytes, o.timeout);
    runs++;
    if (reproduce) std::fprintf(stderr, "Running: %s: ok\n", f.c_str());
    corpus.push_back(std::move(bytes));
  }
  if (reproduce) {
    std::fprintf(stderr, "Executed %lld inputs\n", runs);
    return 0;
  }
  if (corpus.empty()) corpus.push_back({});
  size_t edges = 0;
  std::fprintf(stderr, "INFO: seed %llu, %zu seed inputs, %zu dictionary entries\n",
               static_cast<unsigned long long>(o.seed), corpus.size(), load_dict(o.dict).size());

  const std::vector<std::string> dict = load_dict(o.dict);
  Rng r{o.seed};
  std::vector<uint8_t> input;
  double next_report = 5;
  while ((o.runs < 0 || runs < o.runs) && (o.max_total_time <= 0 || (runs % 64 != 0 || elapsed() < o.max_total_time))) {
    // Parents: recent finds more often than old seeds.
    size_t pick = corpus.size() > 1 && r.chance(40) ? corpus.size() - 1 - r.below(std::min<size_t>(corpus.size(), 32))
                                                    : r.below(corpus.size());
    input = corpus[pick];
    mutate(input, corpus, dict, r, o.max_len);
    if (run_one(input, o.timeout) && corpus.size() < 20000) corpus.push_back(input);
    runs++;
    if (elapsed() > next_report) {
      edges = 0;
      for (uint8_t b : g_virgin) edges += b != 0;
      std::fprintf(stderr, "#%lld\tcorp: %zu\tedges: %zu\texec/s: %.0f\n", runs, corpus.size(), edges,
                   static_cast<double>(runs) / elapsed());
      next_report += 5;
    }
  }
  edges = 0;
  for (uint8_t b : g_virgin) edges += b != 0;
  std::fprintf(stderr, "INFO: corpus %zu inputs, %zu edges\n", corpus.size(), edges);
  std::fprintf(stderr, "Done %lld runs in %.0f second(s)\n", runs, elapsed());
  return 0;
}

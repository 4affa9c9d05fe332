// Shared pieces of the fuzz targets (test/fuzz/fuzz_*.cpp).
//
// Every target defines LLVMFuzzerTestOneInput. Built with clang it links
// against libFuzzer; built with g++ it links against driver.cpp, a small
// coverage-guided mutation fuzzer with the same command line (see run.sh).
//
// The rule every target enforces: an input may be accepted, or rejected with
// score::Error whose message is one line, names the file and is not absurdly
// long. Anything else is a failure: a sanitizer report, a crash, a hang, an
// abort, or an exception that is not score::Error (it escapes
// LLVMFuzzerTestOneInput and the engine reports it with the input).
#pragma once
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include "score/errors.h"

namespace score_fuzz {

// Stops the run: prints why and aborts, which both engines report as a crash
// and save the input for.
[[noreturn]] inline void fail(const std::string& why) {
  std::fprintf(stderr, "\n==FUZZ FAILURE== %s\n", why.c_str());
  std::fflush(stderr);
  std::abort();
}

// A score::Error must have a message fit for a user: non-empty, one line,
// naming `must_name` (the file or folder), at most 4 KB.
inline void check_error(const score::Error& e, const std::string& must_name) {
  const std::string msg = e.what();
  if (msg.empty()) fail("score::Error with an empty message");
  if (msg.find('\n') != std::string::npos || msg.find('\r') != std::string::npos)
    fail("score::Error message spans lines: " + msg);
  if (msg.find(must_name) == std::string::npos) fail("score::Error message does not name '" + must_name + "': " + msg);
  if (msg.size() > 4096) fail("score::Error message is " + std::to_string(msg.size()) + " bytes long");
  if (e.code() == score::ErrorCode::Internal) fail("score::Error(Internal), i.e. a bug: " + msg);
}

// A private scratch folder for the files a target writes, under $TMPDIR
// (run.sh points it into the build folder) and removed at exit.
inline const std::string& scratch_dir() {
  static std::string dir = [] {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t && *t ? t : "/tmp") + "/score-fuzz-XXXXXX";
    if (!::mkdtemp(&tmpl[0])) fail("mkdtemp failed for " + tmpl);
    static std::string keep = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return tmpl;
  }();
  return dir;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) fail("cannot write " + path);
  if (size && std::fwrite(data, 1, size, f) != size) fail("short write to " + path);
  std::fclose(f);
}

inline void write_file(const std::string& path, const std::string& s) {
  write_file(path, reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace score_fuzz

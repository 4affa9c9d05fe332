#include "score/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <new>
#include <system_error>

#include "json.h"
#include "score/errors.h"

// The file format and the conversions below assume a little-endian host
// (x86-64, aarch64), as does the rest of the native core.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "score-rl's safetensors code assumes a little-endian host"
#endif

namespace score {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // a larger header is not a real model
constexpr uint64_t kMaxTensorBytes = 1ull << 62;    // keeps every size computation in range
constexpr size_t kMaxHeaderValues = 1u << 22;       // ~500k tensors; bounds the header DOM's memory

std::string os_error(int err) { return std::generic_category().message(err); }

[[noreturn]] void throw_io(const std::string& path, int err) {
  throw Error(err == ENOENT ? ErrorCode::NotFound : ErrorCode::Io, path + ": " + os_error(err));
}

// numel of shape with overflow checks; false when a dim is negative or the
// byte size (numel * elem) would exceed kMaxTensorBytes.
bool checked_numel(const std::vector<int64_t>& shape, size_t elem, uint64_t* numel) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(n, static_cast<uint64_t>(elem), &bytes) || bytes > kMaxTensorBytes) return false;
  *numel = n;
  return true;
}

// IEEE half -> float, exact for every input (subnormals, inf, nan).
float half_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24 is exact in float.
    float f = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -f : f;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf or nan (payload kept)
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // rebias 15 -> 127
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Closes an fd on scope exit unless released.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

// pread exactly n bytes at offset; false on premature end of file.
bool pread_all(int fd, uint64_t offset, void* out, size_t n, int* err) {
  char* p = static_cast<char*>(out);
  while (n > 0) {
    size_t want = std::min<size_t>(n, 1u << 30);
    ssize_t r = ::pread(fd, p, want, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    if (r == 0) {
      *err = 0;
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------- dtypes

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};
static const DTypeEntry kDTypes[] = {
    {DType::F64, "F64", 8},  {DType::F32, "F32", 4},   {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8},  {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},  {DType::I8, "I8", 1},     {DType::U64, "U64", 8},
    {DType::U32, "U32", 4},  {DType::U16, "U16", 2},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1}, {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
};

const char* dtype_name(DType d) {
  for (const DTypeEntry& e : kDTypes)
    if (e.dtype == d) return e.name;
  return "?";
}

size_t dtype_size(DType d) {
  for (const DTypeEntry& e : kDTypes)
    if (e.dtype == d) return e.size;
  return 0;
}

bool parse_dtype(const std::string& name, DType* out) {
  for (const DTypeEntry& e : kDTypes) {
    if (name == e.name) {
      *out = e.dtype;
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------- reader

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    o.fd_ = -1;
    data_start_ = o.data_start_;
    data_size_ = o.data_size_;
    tensors_ = std::move(o.tensors_);
    metadata_ = std::move(o.metadata_);
    by_name_ = std::move(o.by_name_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) ::close(fd_);
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) throw_io(path, errno);
  struct stat st;
  if (::fstat(fd.fd, &st) != 0) throw_io(path, errno);
  SCORE_CHECK(S_ISREG(st.st_mode), BadFile, path + ": not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  const std::string hdr = path + ": header: ";

  SCORE_CHECK(file_size >= 8, BadFile,
              hdr + "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  unsigned char len_bytes[8];
  int err = 0;
  if (!pread_all(fd.fd, 0, len_bytes, 8, &err)) throw_io(path, err ? err : EIO);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | len_bytes[i];
  SCORE_CHECK(n <= kMaxHeaderBytes, BadFile,
              hdr + "length " + std::to_string(n) + " is absurd (more than 100 MB)");
  SCORE_CHECK(n <= file_size - 8, BadFile,
              hdr + "length " + std::to_string(n) + " runs past the end of the file (" +
                  std::to_string(file_size) + " bytes)");

  SafetensorsFile f;
  f.path_ = path;
  f.data_start_ = 8 + n;
  f.data_size_ = file_size - 8 - n;

  std::string text;
  try {
    text.resize(n);
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::OutOfMemory, hdr + "out of memory reading the header");
  }
  if (!pread_all(fd.fd, 8, &text[0], n, &err)) {
    if (err) throw_io(path, err);
    throw Error(ErrorCode::BadFile, hdr + "file ended inside the header");
  }
  json::Value root = json::parse(text, path + ": header", kMaxHeaderValues);
  text.clear();
  text.shrink_to_fit();
  SCORE_CHECK(root.is_object(), BadFile, hdr + "not a JSON object");

  try {
    for (size_t i = 0; i < root.size(); i++) {
      const std::string& name = root.key(i);
      const json::Value& e = root.at(i);
      if (name == "__metadata__") {
        SCORE_CHECK(e.is_object(), BadFile, hdr + "__metadata__ must be an object of strings");
        for (size_t j = 0; j < e.size(); j++) {
          SCORE_CHECK(e.at(j).is_string(), BadFile,
                      hdr + "__metadata__ value of " + json::quote(e.key(j)) + " is not a string");
          f.metadata_.emplace_back(e.key(j), e.at(j).as_string());
        }
        continue;
      }
      const std::string where = path + ": tensor " + json::quote(name) + ": ";
      SCORE_CHECK(e.is_object(), BadFile, where + "entry is not an object");
      SafeTensorInfo t;
      t.name = name;

      const json::Value* dt = e.get("dtype");
      SCORE_CHECK(dt, BadFile, where + "missing 'dtype'");
      SCORE_CHECK(dt->is_string(), BadFile, where + "'dtype' must be a string");
      SCORE_CHECK(parse_dtype(dt->as_string(), &t.dtype), BadFile,
                  where + "unknown dtype " + json::quote(dt->as_string()));

      const json::Value* sh = e.get("shape");
      SCORE_CHECK(sh, BadFile, where + "missing 'shape'");
      SCORE_CHECK(sh->is_array(), BadFile, where + "'shape' must be an array of integers");
      SCORE_CHECK(sh->size() <= 64, BadFile, where + "'shape' has more than 64 dimensions");
      for (size_t j = 0; j < sh->size(); j++) {
        int64_t d = 0;
        SCORE_CHECK(sh->at(j).get_int64(&d), BadFile, where + "'shape' must be an array of integers");
        SCORE_CHECK(d >= 0, BadFile, where + "negative dimension " + std::to_string(d) + " in 'shape'");
        t.shape.push_back(d);
      }
      SCORE_CHECK(checked_numel(t.shape, dtype_size(t.dtype), &t.numel), BadFile,
                  where + "shape " + shape_str(t.shape) + " is too large");

      const json::Value* off = e.get("data_offsets");
      SCORE_CHECK(off, BadFile, where + "missing 'data_offsets'");
      int64_t b = 0, en = 0;
      SCORE_CHECK(off->is_array() && off->size() == 2 && off->at(0).get_int64(&b) &&
                      off->at(1).get_int64(&en) && b >= 0 && en >= 0,
                  BadFile, where + "'data_offsets' must be two non-negative integers");
      t.begin = static_cast<uint64_t>(b);
      t.end = static_cast<uint64_t>(en);
      SCORE_CHECK(t.begin <= t.end, BadFile,
                  where + "data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
                      "] are reversed (begin > end)");
      SCORE_CHECK(t.end <= f.data_size_, BadFile,
                  where + "data_offsets end " + std::to_string(en) + " is beyond the data (" +
                      std::to_string(f.data_size_) + " bytes)");
      const uint64_t need = t.numel * dtype_size(t.dtype);
      SCORE_CHECK(t.end - t.begin == need, BadFile,
                  where + "data_offsets cover " + std::to_string(t.end - t.begin) + " bytes but shape " +
                      shape_str(t.shape) + " of " + dtype_name(t.dtype) + " needs " + std::to_string(need));
      f.tensors_.push_back(std::move(t));
    }

    // No two tensors may share bytes: sort by begin and compare with the
    // furthest end seen so far (empty tensors occupy nothing).
    std::vector<size_t> order(f.tensors_.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return f.tensors_[a].begin < f.tensors_[b].begin;
    });
    size_t furthest = SIZE_MAX;
    for (size_t k : order) {
      const SafeTensorInfo& t = f.tensors_[k];
      if (t.begin == t.end) continue;
      if (furthest != SIZE_MAX) {
        const SafeTensorInfo& p = f.tensors_[furthest];
        SCORE_CHECK(t.begin >= p.end, BadFile,
                    path + ": tensor " + json::quote(t.name) + ": bytes [" + std::to_string(t.begin) + ", " +
                        std::to_string(t.end) + ") overlap tensor " + json::quote(p.name));
      }
      if (furthest == SIZE_MAX || t.end > f.tensors_[furthest].end) furthest = k;
    }

    f.by_name_.reserve(f.tensors_.size());
    for (size_t i = 0; i < f.tensors_.size(); i++) f.by_name_.emplace_back(f.tensors_[i].name, i);
    std::sort(f.by_name_.begin(), f.by_name_.end());
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::OutOfMemory, hdr + "out of memory reading the header");
  }
  f.fd_ = fd.release();
  return f;
}

const SafeTensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                             [](const std::pair<std::string, size_t>& a, const std::string& b) { return a.first < b; });
  if (it == by_name_.end() || it->first != name) return nullptr;
  return &tensors_[it->second];
}

void SafetensorsFile::read_at(uint64_t offset, void* out, size_t n) const {
  int err = 0;
  if (!pread_all(fd_, data_start_ + offset, out, n, &err)) {
    if (err) throw Error(ErrorCode::Io, path_ + ": " + os_error(err));
    throw Error(ErrorCode::BadFile, path_ + ": file ended early (was it truncated after opening?)");
  }
}

void SafetensorsFile::read_raw(const SafeTensorInfo& t, void* out) const {
  SCORE_CHECK(fd_ >= 0, InvalidArgument, path_ + ": file is not open");
  SCORE_CHECK(t.begin <= t.end && t.end <= data_size_, InvalidArgument,
              path_ + ": tensor " + json::quote(t.name) + ": not a tensor of this file");
  read_at(t.begin, out, static_cast<size_t>(t.end - t.begin));
}

void SafetensorsFile::to_float(const SafeTensorInfo& t, float* out) const {
  SCORE_CHECK(fd_ >= 0, InvalidArgument, path_ + ": file is not open");
  SCORE_CHECK(t.begin <= t.end && t.end <= data_size_ && t.end - t.begin == t.numel * dtype_size(t.dtype),
              InvalidArgument, path_ + ": tensor " + json::quote(t.name) + ": not a tensor of this file");
  if (t.dtype == DType::F32) {
    read_at(t.begin, out, static_cast<size_t>(t.numel) * 4);
    return;
  }
  if (t.dtype != DType::F16 && t.dtype != DType::BF16 && t.dtype != DType::F64) {
    throw Error(ErrorCode::Unsupported, path_ + ": tensor " + json::quote(t.name) + ": dtype " +
                                            dtype_name(t.dtype) + " cannot be converted to float");
  }
  // Convert in chunks through a small buffer.
  const size_t esize = dtype_size(t.dtype);
  const size_t chunk = 1 << 16;  // elements
  std::vector<unsigned char> buf(chunk * esize);
  for (uint64_t i = 0; i < t.numel; i += chunk) {
    size_t m = static_cast<size_t>(std::min<uint64_t>(chunk, t.numel - i));
    read_at(t.begin + i * esize, buf.data(), m * esize);
    float* o = out + i;
    if (t.dtype == DType::F64) {
      for (size_t k = 0; k < m; k++) {
        double d;
        std::memcpy(&d, buf.data() + 8 * k, 8);
        o[k] = static_cast<float>(d);
      }
    } else {
      for (size_t k = 0; k < m; k++) {
        uint16_t h;
        std::memcpy(&h, buf.data() + 2 * k, 2);
        o[k] = t.dtype == DType::F16 ? half_to_float(h) : bf16_to_float(h);
      }
    }
  }
}

// ---------------------------------------------------------------- writer

void write_safetensors(const std::string& path, const std::vector<SafeTensorView>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata) {
  // Validate the input before touching the disk.
  std::vector<const std::string*> names;
  for (const SafeTensorView& t : tensors) names.push_back(&t.name);
  std::sort(names.begin(), names.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
  for (size_t i = 1; i < names.size(); i++)
    SCORE_CHECK(*names[i] != *names[i - 1], InvalidArgument,
                path + ": tensor " + json::quote(*names[i]) + " is given twice");
  for (size_t i = 0; i < metadata.size(); i++) {
    SCORE_CHECK(json::valid_utf8(metadata[i].first) && json::valid_utf8(metadata[i].second), InvalidArgument,
                path + ": metadata " + json::quote(metadata[i].first) + " is not valid UTF-8");
    for (size_t j = 0; j < i; j++)
      SCORE_CHECK(metadata[j].first != metadata[i].first, InvalidArgument,
                  path + ": metadata key " + json::quote(metadata[i].first) + " is given twice");
  }

  json::Value header = json::Value::object();
  if (!metadata.empty()) {
    json::Value m = json::Value::object();
    for (const auto& kv : metadata) m.append(kv.first, json::Value::string(kv.second));
    header.append("__metadata__", std::move(m));
  }
  std::vector<std::pair<const void*, size_t>> chunks;
  chunks.emplace_back(nullptr, 0);  // header length, filled below
  chunks.emplace_back(nullptr, 0);  // header text
  uint64_t offset = 0;
  for (const SafeTensorView& t : tensors) {
    const std::string where = path + ": tensor " + json::quote(t.name) + ": ";
    SCORE_CHECK(t.name != "__metadata__", InvalidArgument, where + "the name is reserved");
    SCORE_CHECK(json::valid_utf8(t.name), InvalidArgument, where + "the name is not valid UTF-8");
    uint64_t numel = 0;
    SCORE_CHECK(checked_numel(t.shape, dtype_size(t.dtype), &numel), InvalidArgument,
                where + "bad shape " + shape_str(t.shape));
    const uint64_t bytes = numel * dtype_size(t.dtype);
    SCORE_CHECK(bytes == 0 || t.data != nullptr, InvalidArgument, where + "no data");
    json::Value e = json::Value::object();
    e.append("dtype", json::Value::string(dtype_name(t.dtype)));
    json::Value shape = json::Value::array();
    for (int64_t d : t.shape) shape.push(json::Value::integer(d));
    e.append("shape", std::move(shape));
    json::Value offs = json::Value::array();
    offs.push(json::Value::integer(static_cast<int64_t>(offset)));
    offs.push(json::Value::integer(static_cast<int64_t>(offset + bytes)));
    e.append("data_offsets", std::move(offs));
    header.append(t.name, std::move(e));
    if (bytes) chunks.emplace_back(t.data, static_cast<size_t>(bytes));
    offset += bytes;
  }
  std::string text = json::write(header, false);
  while (text.size() % 8) text += ' ';  // data starts 8-byte aligned
  unsigned char len_bytes[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; i++) len_bytes[i] = static_cast<unsigned char>(n >> (8 * i));
  chunks[0] = {len_bytes, 8};
  chunks[1] = {text.data(), text.size()};
  write_file_atomic(path, chunks);
}

// ---------------------------------------------------------------- file helpers

std::string read_file(const std::string& path, size_t max_bytes) {
  FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) throw_io(path, errno);
  struct stat st;
  if (::fstat(fd.fd, &st) != 0) throw_io(path, errno);
  SCORE_CHECK(S_ISREG(st.st_mode), BadFile, path + ": not a regular file");
  SCORE_CHECK(static_cast<uint64_t>(st.st_size) <= max_bytes, BadFile,
              path + ": file is " + std::to_string(st.st_size) + " bytes, more than the limit of " +
                  std::to_string(max_bytes));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd.fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_io(path, errno);
    }
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
    // The file may grow after fstat; keep the cap.
    SCORE_CHECK(out.size() <= max_bytes, BadFile,
                path + ": file is more than the limit of " + std::to_string(max_bytes) + " bytes");
  }
  return out;
}

static std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& chunks) {
  const std::string tmp = path + ".tmp-" + std::to_string(static_cast<long>(::getpid()));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(ErrorCode::Io, path + ": " + os_error(errno));
  auto fail = [&](int err) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(ErrorCode::Io, path + ": " + os_error(err));
  };
  for (const auto& c : chunks) {
    const char* p = static_cast<const char*>(c.first);
    size_t n = c.second;
    while (n > 0) {
      ssize_t w = ::write(fd, p, std::min<size_t>(n, 1u << 30));
      if (w < 0) {
        if (errno == EINTR) continue;
        fail(errno);
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  if (::fsync(fd) != 0) fail(errno);
  int rc = ::close(fd);
  fd = -1;
  if (rc != 0) fail(errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail(errno);
  // Make the rename durable. Some file systems cannot fsync a directory
  // (EINVAL); the data itself is already on disk then.
  const std::string dir = dir_of(path);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY);
  if (dfd >= 0) {
    int r = ::fsync(dfd);
    int err = errno;
    ::close(dfd);
    if (r != 0 && err != EINVAL && err != EROFS) throw Error(ErrorCode::Io, dir + ": " + os_error(err));
  }
}

void make_dirs(const std::string& dir) {
  SCORE_CHECK(!dir.empty(), InvalidArgument, "make_dirs: empty directory name");
  size_t pos = 0;
  for (;;) {
    size_t slash = dir.find('/', pos);
    std::string prefix = slash == std::string::npos ? dir : dir.substr(0, slash);
    if (!prefix.empty() && prefix != "." && prefix != "..") {
      if (::mkdir(prefix.c_str(), 0755) != 0) {
        int err = errno;
        struct stat st;
        if (err != EEXIST) throw Error(ErrorCode::Io, prefix + ": " + os_error(err));
        if (::stat(prefix.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
          throw Error(ErrorCode::Io, prefix + ": exists and is not a directory");
      }
    }
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace score

// safetensors files (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON header
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}
// and the tensor bytes (offsets are relative to the first byte after the header).
//
// The reader treats the file as untrusted: every inconsistency throws
// score::Error(BadFile, "<path>: header: <what>" or "<path>: tensor '<name>': <what>").
// It keeps the file open and reads tensors on demand with pread, so a large
// checkpoint is never held twice in memory and a file truncated underneath
// the reader gives an error, not a crash (no mmap, no SIGBUS).
//
// Also here: the small file helpers the file layer shares (read a whole file
// with a size cap, write a file atomically).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace score {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2 };

const char* dtype_name(DType d);  // the header spelling: "F32", "BF16", ...
size_t dtype_size(DType d);       // bytes per element
bool parse_dtype(const std::string& name, DType* out);  // false when unknown
std::string shape_str(const std::vector<int64_t>& shape);  // "[2, 3]", for error messages

struct SafeTensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t numel = 0;
  uint64_t begin = 0, end = 0;  // byte range, relative to the start of the data section
};

class SafetensorsFile {
 public:
  // Opens and validates the header; throws NotFound when the file does not
  // exist, Io on OS errors, BadFile on any malformed content.
  static SafetensorsFile open(const std::string& path);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  // Tensors in header order.
  const std::vector<SafeTensorInfo>& tensors() const { return tensors_; }
  const SafeTensorInfo* find(const std::string& name) const;  // nullptr when absent
  // "__metadata__" entries in header order.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  uint64_t data_size() const { return data_size_; }

  // Converts an F32/F16/BF16/F64 tensor into numel floats at out (F64 rounds
  // to nearest). Other dtypes throw Unsupported naming the file and tensor.
  void to_float(const SafeTensorInfo& t, float* out) const;
  // Copies the tensor's raw little-endian bytes (end - begin of them) to out;
  // use for I32/I64 and friends.
  void read_raw(const SafeTensorInfo& t, void* out) const;

 private:
  SafetensorsFile() = default;
  void read_at(uint64_t offset, void* out, size_t n) const;

  std::string path_;
  int fd_ = -1;
  uint64_t data_start_ = 0;  // 8 + N
  uint64_t data_size_ = 0;
  std::vector<SafeTensorInfo> tensors_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::vector<std::pair<std::string, size_t>> by_name_;  // sorted, for find()
};

// A tensor to write: raw row-major little-endian data of numel(shape) *
// dtype_size(dtype) bytes. The pointer must stay valid during the call.
struct SafeTensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

// Writes a safetensors file atomically (see write_file_atomic): the header
// lists the tensors in the given order, contiguous in the data section, the
// header is padded with spaces to a multiple of 8 bytes. Any dtype is written
// as its raw bytes. Throws InvalidArgument for bad input (duplicate or
// reserved names, negative dims, null data), Io for OS errors.
void write_safetensors(const std::string& path, const std::vector<SafeTensorView>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata = {});

// ---- file helpers ----

// Reads a whole regular file. NotFound when it does not exist, Io on OS
// errors, BadFile when it is larger than max_bytes.
std::string read_file(const std::string& path, size_t max_bytes);

// Writes the concatenation of the chunks to "<path>.tmp-<pid>" in the same
// directory, fsyncs it, renames it over path and fsyncs the directory. On any
// failure the temporary file is removed, the old file at path is untouched,
// and score::Error(Io, "<path>: <strerror>") is thrown.
void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& chunks);

// mkdir -p: creates dir and its missing parents (Io on failure, including when
// a component exists and is not a directory).
void make_dirs(const std::string& dir);

}  // namespace score

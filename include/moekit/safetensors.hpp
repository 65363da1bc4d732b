// moekit: reading and writing safetensors files and sharded checkpoints.
//
// A file is memory-mapped read-only and only its header is read at open, so viewing one tensor
// touches only that tensor's pages. Every offset and size in the header is checked against the
// file before anything points into it; a malformed file gives one moekit::Error
// (Errc::invalid_argument; Errc::not_found for a missing file or tensor) naming the file and tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "moekit/dtype.hpp"
#include "moekit/tensor.hpp"

namespace moekit::safetensors {

struct TensorInfo {
  std::string name;
  std::string dtype_name;               // as in the file: "BF16", "F16", "F32", "F64", "I32", "I64", "U8", ...
  std::optional<DType> dtype;           // moekit's dtype when it has one (BF16, F16, F32, F64, I32, I64)
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;     // byte range within the data section
};

struct OpenOptions {
  std::uint64_t max_header_bytes = 100ull << 20;
};

// One .safetensors file, memory-mapped read-only; movable, not copyable. Immutable after open,
// so const members may be called from several threads at once.
class File {
 public:
  static File open(const std::string& path, const OpenOptions& options = {});  // throws moekit::Error
  // The same checks over bytes already in memory (tests, fuzzing); `label` names them in errors.
  static File from_memory(std::shared_ptr<const std::vector<std::uint8_t>> bytes,
                          const std::string& label = "<memory>", const OpenOptions& options = {});

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  const std::string& path() const;
  const std::vector<TensorInfo>& tensors() const;  // in the header's order
  const TensorInfo* find(std::string_view name) const noexcept;
  const std::map<std::string, std::string>& metadata() const;  // "__metadata__"

  // A host view of the tensor's bytes in the mapping (data is const in practice: the pages are
  // mapped read-only and a write faults). Valid while this File lives. A scalar (shape []) is
  // viewed as shape [1]. Throws not_found naming the file, invalid_argument for a dtype moekit has
  // no DType for, a rank above kMaxRank, or data not aligned to its element size.
  TensorView view(std::string_view name) const;

  struct Impl;

 private:
  explicit File(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A folder with model.safetensors, or shards listed in model.safetensors.index.json. Shards are
// opened on first use and kept open; the cache is guarded by a mutex, so every const member may be
// called from several threads at once. References and views stay valid while the Checkpoint lives.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& dir, const OpenOptions& options = {});

  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;
  ~Checkpoint();

  std::vector<std::string> names() const;                 // every tensor name, sorted
  bool contains(std::string_view name) const noexcept;
  const TensorInfo& info(std::string_view name) const;    // opens the shard on first use
  TensorView view(std::string_view name) const;           // opens only the shard that holds it
  std::vector<std::string> files() const;                 // shard file names, sorted
  // Opens every shard and checks that each holds exactly the tensors the index gives it.
  void validate() const;

  struct Impl;

 private:
  explicit Checkpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct NamedTensor {
  std::string name;
  TensorView tensor;  // a host tensor, any strides (written contiguous)
};

// Writes through a temporary file renamed into place, so a reader never sees half a file. The
// header lists the tensors in the given order; their bytes go largest element size first, which
// keeps each one aligned (8-byte-padded header, no gaps) so that File::view can point at it.
void write_file(const std::string& path, const std::vector<NamedTensor>& tensors,
                const std::map<std::string, std::string>& metadata = {});

// Writes model-00001-of-0000N.safetensors ... and model.safetensors.index.json, each shard at most
// max_shard_bytes of tensor data (a tensor larger than that gets a shard of its own); N == 1 still
// writes the index. Tensors keep their order.
void write_sharded(const std::string& dir, const std::vector<NamedTensor>& tensors, std::uint64_t max_shard_bytes);

// The safetensors name of a moekit dtype ("BF16", ...), and the size of an element of a
// safetensors dtype name (nullopt for a name this library does not know).
std::string_view file_dtype_name(DType t) noexcept;
std::optional<std::size_t> file_dtype_size(std::string_view name) noexcept;

}  // namespace moekit::safetensors

#include <functional>

#include "io/mapped_file.hpp"
#include "io/safetensors_header.hpp"
#include "io/strict_json.hpp"
#include "moekit/error.hpp"
#include "moekit/safetensors.hpp"

namespace moekit::safetensors {

struct File::Impl {
  std::string path;
  io::Bytes bytes;
  detail::Header header;
  std::map<std::string, std::size_t, std::less<>> by_name;
};

namespace {

std::unique_ptr<File::Impl> make_impl(std::string label, io::Bytes bytes, const OpenOptions& options) {
  auto impl = std::make_unique<File::Impl>();
  impl->header = detail::parse_header(bytes.data, bytes.size, options, label);
  impl->path = std::move(label);
  impl->bytes = std::move(bytes);
  for (std::size_t i = 0; i < impl->header.tensors.size(); ++i)
    impl->by_name.emplace(impl->header.tensors[i].name, i);  // keys are unique: the parser refuses duplicates
  return impl;
}

}  // namespace

File::File(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

File File::open(const std::string& path, const OpenOptions& options) {
  return File(make_impl(path, io::map_file(path), options));
}

File File::from_memory(std::shared_ptr<const std::vector<std::uint8_t>> bytes, const std::string& label,
                       const OpenOptions& options) {
  if (!bytes) throw Error(Errc::invalid_argument, label + ": no bytes");
  io::Bytes b;
  b.data = bytes->data();
  b.size = bytes->size();
  b.owner = std::move(bytes);
  return File(make_impl(label, std::move(b), options));
}

const std::string& File::path() const { return impl_->path; }
const std::vector<TensorInfo>& File::tensors() const { return impl_->header.tensors; }
const std::map<std::string, std::string>& File::metadata() const { return impl_->header.metadata; }

const TensorInfo* File::find(std::string_view name) const noexcept {
  const auto it = impl_->by_name.find(name);
  return it == impl_->by_name.end() ? nullptr : &impl_->header.tensors[it->second];
}

TensorView File::view(std::string_view name) const {
  const TensorInfo* t = find(name);
  if (!t) throw Error(Errc::not_found, impl_->path + ": no tensor " + io::quoted(name));
  const std::string where = impl_->path + ": tensor " + io::quoted(name);
  if (!t->dtype)
    throw Error(Errc::invalid_argument, where + " has dtype " + t->dtype_name + ", which moekit cannot view");
  if (t->shape.size() > std::size_t(kMaxRank))
    throw Error(Errc::invalid_argument, where + " has rank " + std::to_string(t->shape.size()) +
                                            "; moekit views hold at most " + std::to_string(kMaxRank));
  // parse_header proved begin <= end <= data_size, so the pointer stays inside the mapping.
  const std::uint8_t* p = impl_->bytes.data + impl_->header.data_offset + t->begin;
  const std::size_t element = dtype_size(*t->dtype);
  if (reinterpret_cast<std::uintptr_t>(p) % element != 0)
    throw Error(Errc::invalid_argument, where + " starts at a byte not aligned to its " + std::to_string(element) +
                                            "-byte elements");
  TensorView v;
  v.data = const_cast<std::uint8_t*>(p);  // TensorView has no const flavour; the pages are read-only
  v.dtype = *t->dtype;
  v.rank = t->shape.empty() ? 1 : int(t->shape.size());
  if (t->shape.empty()) {
    v.shape[0] = 1;
  } else {
    for (int d = 0; d < v.rank; ++d) v.shape[d] = t->shape[std::size_t(d)];
  }
  // An empty tensor passes the byte count check with any other dims, so strides can still overflow.
  std::int64_t stride = 1;
  for (int d = v.rank - 1; d >= 0; --d) {
    v.strides[d] = stride;
    if (d > 0 && __builtin_mul_overflow(stride, v.shape[d], &stride))
      throw Error(Errc::invalid_argument, where + ": shape overflows 64-bit strides");
  }
  return v;
}

}  // namespace moekit::safetensors

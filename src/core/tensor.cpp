#include "moekit/tensor.hpp"

#include <cstdlib>
#include <new>

#include "moekit/error.hpp"

namespace moekit {

std::string_view device_type_name(DeviceType t) {
  return t == DeviceType::cuda ? "cuda" : "cpu";
}

std::string device_name(Device d) {
  if (d.type == DeviceType::cpu) return "cpu";
  return std::string(device_type_name(d.type)) + ":" + std::to_string(d.index);
}

TensorView TensorView::contiguous(void* data, DType dtype, std::initializer_list<std::int64_t> shape,
                                  Device device) {
  if (shape.size() == 0 || shape.size() > std::size_t(kMaxRank))
    throw Error(Errc::invalid_argument, "tensor rank must be 1.." + std::to_string(kMaxRank));
  TensorView v;
  v.data = data;
  v.dtype = dtype;
  v.device = device;
  v.rank = int(shape.size());
  int i = 0;
  for (std::int64_t s : shape) v.shape[i++] = s;
  std::int64_t stride = 1;
  for (int d = v.rank - 1; d >= 0; --d) {
    if (v.shape[d] < 0) throw Error(Errc::invalid_argument, "negative tensor dimension in " + v.shape_string());
    v.strides[d] = stride;
    if (v.shape[d] != 0 && stride > INT64_MAX / v.shape[d])
      throw Error(Errc::invalid_argument, "tensor shape " + v.shape_string() + " overflows 64-bit sizes");
    stride *= v.shape[d];
  }
  return v;
}

std::int64_t TensorView::numel() const noexcept {
  if (rank == 0) return 0;
  std::int64_t n = 1;
  for (int d = 0; d < rank; ++d) n *= shape[d];
  return n;
}

bool TensorView::is_contiguous() const noexcept {
  std::int64_t expected = 1;
  for (int d = rank - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (int d = 0; d < rank; ++d) {
    if (d) s += ", ";
    s += std::to_string(shape[d]);
  }
  return s + "]";
}

void Tensor::Free::operator()(void* p) const noexcept { std::free(p); }

Tensor::Tensor(DType dtype, std::initializer_list<std::int64_t> shape)
    : Tensor(dtype, shape.begin(), int(shape.size())) {}

Tensor::Tensor(DType dtype, const std::int64_t* shape, int rank) {
  if (rank <= 0 || rank > kMaxRank)
    throw Error(Errc::invalid_argument, "tensor rank must be 1.." + std::to_string(kMaxRank));
  view_.dtype = dtype;
  view_.rank = rank;
  std::int64_t n = 1;
  for (int d = rank - 1; d >= 0; --d) {
    if (shape[d] < 0) throw Error(Errc::invalid_argument, "negative tensor dimension");
    view_.shape[d] = shape[d];
    view_.strides[d] = n;
    if (shape[d] != 0 && n > (std::int64_t(1) << 62) / shape[d])
      throw Error(Errc::invalid_argument, "tensor size overflows");
    n *= shape[d];
  }
  // Round up to the alignment; allocate at least one line so data is never null.
  std::size_t bytes = std::size_t(n) * dtype_size(dtype);
  bytes = (bytes + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p)
    throw Error(Errc::out_of_memory,
                "cannot allocate " + std::to_string(bytes) + " bytes for a " + view_.shape_string() + " tensor");
  storage_.reset(p);
  view_.data = p;
}

}  // namespace moekit

// A test helper shared by the CPU and CUDA suites: rows with padding after them.
#pragma once

#include <cmath>
#include <cstring>

#include "moekit/inputs.hpp"
#include "moekit/tensor.hpp"

namespace moekit::testing {

// A [rows, cols] view into a buffer whose rows are `pad` elements longer, holding a copy of the
// contiguous 2-D `src`; the padding is NaN, so a write into it shows.
inline TensorView padded_copy(const Tensor& src, Tensor& storage, std::int64_t pad) {
  const std::int64_t rows = src.view().shape[0], cols = src.view().shape[1];
  storage = Tensor(src.dtype(), {rows, cols + pad});
  fill_value(storage.view(), std::nan(""));
  TensorView v = storage.view();
  v.shape[1] = cols;
  const std::size_t es = dtype_size(src.dtype());
  for (std::int64_t r = 0; r < rows; ++r)
    std::memcpy(static_cast<char*>(v.data) + std::size_t(r * (cols + pad)) * es,
                static_cast<const char*>(src.view().data) + std::size_t(r * cols) * es, std::size_t(cols) * es);
  return v;
}

}  // namespace moekit::testing

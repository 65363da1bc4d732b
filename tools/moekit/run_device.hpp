// moekit CLI: device copies of `moekit run`'s tensors (src/cuda has the library's own; the CLI keeps
// its few cudaMemcpy calls here so that cmd_run.cpp builds without CUDA headers).
#pragma once

#include "moekit/tensor.hpp"

namespace moekit_cli {

// A contiguous copy of `host` on `device` (a CUDA device). Throws moekit::Error on failure, and
// Errc::unsupported in a build without CUDA.
moekit::TensorView upload_to_device(const moekit::TensorView& host, moekit::Device device);
// Frees what upload_to_device returned; a host view is left alone.
void free_on_device(const moekit::TensorView& view) noexcept;
// Waits for the device, then copies `src` (device, contiguous) into `dst` (host, same size).
void download_from_device(const moekit::TensorView& src, const moekit::TensorView& dst);

}  // namespace moekit_cli

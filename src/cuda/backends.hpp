// moekit CUDA backends: the three strategies of DESIGN §1 on NVIDIA GPUs (sm_80 and newer).
//
//   eager       host routing (one device-to-host copy and sync per call), per-expert launches;
//               cannot be captured in a CUDA graph.
//   batched_mm  one product per (token, k) pair reading the weights in place; sync-free.
//   grouped_mm  device routing (counts, offsets, permutation) and one grouped GEMM per projection
//               reading the offsets from device memory; sync-free, graph-capturable.
//   fused       weight-streaming gemv kernels for decode-sized batches, the grouped pipeline
//               beyond (fused.hpp); sync-free, graph-capturable.
//   auto        runs one of batched_mm, grouped_mm, fused per call from a tune table or a
//               heuristic (include/moekit/tune.hpp); registered under the reserved name.
#pragma once

#include <memory>

#include "moekit/backend.hpp"

namespace moekit::cuda {

std::unique_ptr<Backend> make_eager_backend();
std::unique_ptr<Backend> make_batched_mm_backend();
std::unique_ptr<Backend> make_grouped_mm_backend();
std::unique_ptr<Backend> make_fused_backend();
std::unique_ptr<Backend> make_auto_backend();

}  // namespace moekit::cuda

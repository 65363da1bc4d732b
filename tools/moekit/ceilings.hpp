// moekit CLI: the hardware ceilings the benchmark's floor is made of, measured on the spot.
//
//   floor = max(hit weight bytes / copy bandwidth, FLOPs / GEMM rate)   (DESIGN §3)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moekit/dtype.hpp"

namespace moekit_cli {

struct CopyCeiling {
  double bytes_per_s = 0;     // read + write bytes over the rep named by `statistic`
  std::uint64_t buffer_bytes = 0;
  int threads = 0;
  int reps = 0;
  std::string method;          // "memcpy of 1.00 GiB split over 2 threads"
  std::string statistic = "best";  // of the reps: "best" (CPU) or "median" (CUDA)
  double best_bytes_per_s = 0;     // the best rep, whatever `statistic` is
};

struct GemmRate {
  std::string library;  // "OpenBLAS 0.3.21 (SkylakeX)", "moekit"
  std::string routine;  // "cblas_sbgemm bf16 x bf16 -> f32"
  std::int64_t n = 0;   // an n^3 product
  double flops_per_s = 0;  // over the rep named by `statistic`, after warm-up calls
  int reps = 0;
  bool correct = true;  // false: it returned a wrong product, so its speed means nothing
  std::string statistic = "best";  // "best" (CPU) or "median" (CUDA)
};

struct Ceilings {
  CopyCeiling copy;
  std::vector<GemmRate> gemm_candidates;  // every GEMM tried, for the record
  GemmRate gemm;                          // the fastest correct one: the one the floor uses
  std::vector<std::string> notes;         // GEMMs looked for and not found
  int threads = 0;
  std::string where;  // "2 threads", or the GPU's name
};

// Host memory the measurement needs at its peak (the two copy buffers).
std::uint64_t ceiling_memory_bytes();

// `threads` 0 = all hardware threads. The GEMM is tried with each library present for `dtype`
// (OpenBLAS sgemm, and sbgemm for bf16 when the loaded OpenBLAS exports it; moekit's own kernel),
// each result checked; OpenBLAS runs on `threads` threads during the measurement only.
Ceilings measure_ceilings(moekit::DType dtype, int threads);

// On cuda:0: cudaMemcpyAsync device to device of kCudaCopyBytes, and a cuBLAS n^3 GEMM in `dtype`
// (bf16/f16 in and out with fp32 accumulation; f32 in the default math mode, so no TF32), each the
// median of several reps timed with CUDA events; the GEMM's product spot-checked. `threads` fill
// the GEMM's random operands on the host.
Ceilings measure_cuda_ceilings(moekit::DType dtype, int threads);
// Device memory those measurements need at their peak.
std::uint64_t cuda_ceiling_memory_bytes(moekit::DType dtype);

}  // namespace moekit_cli

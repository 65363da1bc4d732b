// How `moekit bench --device cuda` names the GPU it measured on.
#if MOEKIT_HAVE_CUDA

#include <cuda_runtime.h>

#include "bench.hpp"
#include "cuda_util.hpp"
#include "table.hpp"

namespace moekit_cli {

namespace {
std::string version_text(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }
}  // namespace

GpuDescription describe_gpu() {
  GpuDescription g;
  g.index = 0;
  cudaDeviceProp prop{};
  cu::check(cudaGetDeviceProperties(&prop, g.index), "cudaGetDeviceProperties(cuda:0)");
  g.name = prop.name;
  g.major = prop.major;
  g.minor = prop.minor;
  g.sms = prop.multiProcessorCount;
  g.memory_bytes = prop.totalGlobalMem;
  g.l2_bytes = std::uint64_t(prop.l2CacheSize);
  cu::check(cudaDriverGetVersion(&g.driver_version), "cudaDriverGetVersion");
  cu::check(cudaRuntimeGetVersion(&g.runtime_version), "cudaRuntimeGetVersion");
  return g;
}

std::string gpu_text(const GpuDescription& g) {
  return "cuda:" + std::to_string(g.index) + " " + g.name + "; sm_" + std::to_string(g.major) + std::to_string(g.minor) +
         ", " + std::to_string(g.sms) + " SMs, " + bytes_iec(g.memory_bytes) + ", L2 " + bytes_iec(g.l2_bytes) +
         "; driver " + version_text(g.driver_version) + ", runtime " + version_text(g.runtime_version);
}

}  // namespace moekit_cli

#endif  // MOEKIT_HAVE_CUDA

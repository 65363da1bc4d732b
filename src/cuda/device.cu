// The availability probe behind Backend::available() and supports().
#include <mutex>
#include <string>

#include "cuda/common.hpp"

namespace moekit::cuda {

Support device_support() {
  static const Support cached = [] {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      cudaGetLastError();  // the probe's failure must not surface as a later launch's error
      return Support::no(std::string("no CUDA device: ") + cudaGetErrorString(err));
    }
    if (count == 0) return Support::no("no CUDA device: none found");
    std::string found;
    for (int d = 0; d < count; ++d) {
      if (device_support(d).ok) return Support::yes();
      cudaDeviceProp prop{};
      if (cudaGetDeviceProperties(&prop, d) == cudaSuccess)
        found += (found.empty() ? "" : ", ") + std::to_string(prop.major) + "." + std::to_string(prop.minor);
    }
    return Support::no("no CUDA device of compute capability 8.0 or newer (found " + found + ")");
  }();
  return cached;
}

Support device_support(int device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return Support::no("no CUDA device");
  }
  if (device < 0 || device >= count)
    return Support::no("device cuda:" + std::to_string(device) + " does not exist (" + std::to_string(count) +
                       " devices)");
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    cudaGetLastError();
    return Support::no("cannot read the compute capability of cuda:" + std::to_string(device));
  }
  if (major < 8)
    return Support::no("cuda:" + std::to_string(device) + " has compute capability " + std::to_string(major) + "." +
                       std::to_string(minor) + "; moekit's CUDA kernels need 8.0 or newer");
  return Support::yes();
}

}  // namespace moekit::cuda

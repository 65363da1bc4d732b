// moekit CUDA host glue shared by the backends: error conversion, the current-device guard, and
// the availability probe. Included by .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "moekit/backend.hpp"
#include "moekit/error.hpp"

namespace moekit::cuda {

// Throws Errc::device naming what failed; `what` says which step ("grouped_mm: GEMM1").
inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw Error(Errc::device, std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

// Makes `device` current for the scope and restores the caller's device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() {
    int now = -1;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// Whether this machine has a CUDA device moekit can use (sm_80 or newer); cached after the first call.
Support device_support();
// Whether `device` exists and is sm_80 or newer.
Support device_support(int device);

}  // namespace moekit::cuda

// Helpers of the CUDA tests: whether a GPU is here, and device copies of host inputs.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "moekit/backend.hpp"
#include "moekit/inputs.hpp"

namespace moekit::cuda_test {

inline bool have_gpu() {
  for (const Backend* b : default_registry().list())
    if (b->device() == DeviceType::cuda) return b->available().ok;
  return false;
}

#define MOEKIT_SKIP_WITHOUT_GPU() \
  if (!::moekit::cuda_test::have_gpu()) GTEST_SKIP() << "no CUDA device"

inline void ok(cudaError_t e, const char* what) {
  ASSERT_EQ(e, cudaSuccess) << what << ": " << cudaGetErrorString(e);
}

// Device copies of a set of inputs (contiguous), freed with the object.
class DeviceInputs {
 public:
  explicit DeviceInputs(const ExpertsInputs& in) {
    call_ = in.call();
    for (TensorView* t : {&call_.hidden_states, &call_.top_k_index, &call_.top_k_weights, &call_.gate_up_proj,
                          &call_.down_proj, &call_.gate_up_proj_bias, &call_.down_proj_bias, &call_.output}) {
      if (!t->defined()) continue;
      void* d = nullptr;
      if (t->nbytes()) {
        cudaMalloc(&d, t->nbytes());
        cudaMemcpy(d, t->data, t->nbytes(), cudaMemcpyHostToDevice);
      }
      owned_.push_back(d);
      t->data = d;
      t->device = Device{DeviceType::cuda, 0};
    }
  }
  ~DeviceInputs() {
    for (void* p : owned_) cudaFree(p);
  }
  DeviceInputs(const DeviceInputs&) = delete;
  DeviceInputs& operator=(const DeviceInputs&) = delete;

  const ExpertsCall& call() const { return call_; }
  std::vector<unsigned char> output_bytes() const {
    std::vector<unsigned char> v(call_.output.nbytes());
    cudaMemcpy(v.data(), call_.output.data, v.size(), cudaMemcpyDeviceToHost);
    return v;
  }
  void poison_output() const { cudaMemset(call_.output.data, 0xff, call_.output.nbytes()); }

 private:
  ExpertsCall call_;
  std::vector<void*> owned_;
};

}  // namespace moekit::cuda_test

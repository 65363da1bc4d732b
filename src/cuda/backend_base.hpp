// moekit CUDA: what the three CUDA backends share: device, availability, the limits of the device
// routing preparation, and the workspace check. Included by .cu files only.
#pragma once

#include <cstdint>
#include <string>

#include "cuda/common.hpp"
#include "cuda/pipeline.hpp"
#include "cuda/kernels/routing.cuh"
#include "moekit/backend.hpp"

namespace moekit::cuda {

class CudaBackend : public Backend {
 public:
  DeviceType device() const override { return DeviceType::cuda; }
  Support available() const override { return device_support(); }

  Support supports(const ExpertsProblem& p) const override {
    if (p.device.type != DeviceType::cuda) return Support::no("the tensors are not on a CUDA device");
    if (Support s = device_support(p.device.index); !s.ok) return s;
    if (p.experts > kernels::kMaxExperts)
      return Support::no("E = " + std::to_string(p.experts) + " experts; the CUDA routing supports E <= " +
                         std::to_string(kernels::kMaxExperts));
    if (p.top_k > kernels::kMaxTopK)
      return Support::no("K = " + std::to_string(p.top_k) + "; the CUDA backends support K <= " +
                         std::to_string(kernels::kMaxTopK));
    // Rows, tiles and columns are 32-bit in the kernels.
    constexpr std::int64_t kMax = (std::int64_t(1) << 31) - 1;
    if (p.tokens * p.top_k > kMax / 2 || p.hidden > kMax || p.gate_up_rows() > kMax)
      return Support::no("T*K = " + std::to_string(p.tokens * p.top_k) +
                         " pairs or the hidden/intermediate size exceed the kernels' 32-bit row indices");
    return Support::yes();
  }

  std::size_t workspace_bytes(const ExpertsProblem& p) const override { return workspace_layout(p, strategy()).bytes; }

 protected:
  virtual Strategy strategy() const = 0;

  WorkspaceLayout checked_layout(const ExpertsProblem& p, Workspace ws) const {
    const WorkspaceLayout l = workspace_layout(p, strategy());
    if (ws.bytes < l.bytes || (l.bytes > 0 && ws.data == nullptr))
      throw Error(Errc::invalid_argument, std::string(name()) + " (cuda) needs a device workspace of " +
                                              std::to_string(l.bytes) + " bytes, got " + std::to_string(ws.bytes));
    return l;
  }
};

}  // namespace moekit::cuda

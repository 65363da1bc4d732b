// moekit CPU: what the three CPU backends have in common as Backend implementations.
#pragma once

#include <cstddef>
#include <string>

#include "moekit/backend.hpp"

namespace moekit::cpu {

class CpuBackend : public Backend {
 public:
  DeviceType device() const final { return DeviceType::cpu; }
  // Not available when MOEKIT_CPU_ISA asks for kernels this build or CPU cannot run.
  Support available() const final;
  // Every validated CPU problem: all dtypes, layouts, activations, biases, strides and sentinels.
  Support supports(const ExpertsProblem& problem) const final;

 protected:
  // Throws unless `workspace` holds `need` bytes, 64-byte aligned (run() may be called directly).
  void check_workspace(const Workspace& workspace, std::size_t need) const;
};

}  // namespace moekit::cpu

#include "cpu/cpu_backend.hpp"

#include <cstdint>

#include "cpu/isa.hpp"
#include "moekit/error.hpp"

namespace moekit::cpu {

Support CpuBackend::available() const {
  try {
    kernel_table();
  } catch (const Error& e) {
    return Support::no(e.what());
  }
  return Support::yes();
}

Support CpuBackend::supports(const ExpertsProblem& problem) const {
  if (problem.device.type != DeviceType::cpu) return Support::no("the data is not in host memory");
  return Support::yes();
}

void CpuBackend::check_workspace(const Workspace& workspace, std::size_t need) const {
  if (need == 0) return;
  if (workspace.data == nullptr || workspace.bytes < need)
    throw Error(Errc::invalid_argument, "'" + std::string(name()) + "' needs a workspace of " + std::to_string(need) +
                                            " bytes, got " + std::to_string(workspace.bytes));
  if (reinterpret_cast<std::uintptr_t>(workspace.data) % 64 != 0)
    throw Error(Errc::invalid_argument, "workspace must be 64-byte aligned");
}

}  // namespace moekit::cpu

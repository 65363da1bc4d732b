// The check harness's device hook in a build without CUDA (src/cuda/staging.cu otherwise).
#include "core/device_staging.hpp"

#include "moekit/error.hpp"

#if !MOEKIT_HAVE_CUDA
namespace moekit {

void run_staged_on_device(const Backend& backend, const ExpertsCall&, const ExpertsProblem&, const RunContext&) {
  throw Error(Errc::unsupported, "backend '" + std::string(backend.name()) + "' (" +
                                     std::string(device_type_name(backend.device())) +
                                     "): this build has no CUDA support");
}

}  // namespace moekit
#endif

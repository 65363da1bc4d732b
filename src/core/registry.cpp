#include <cstdlib>
#include <memory>
#include <mutex>

#include "cpu/backends.hpp"
#if MOEKIT_HAVE_CUDA
#include "cuda/backends.hpp"
#include "cuda/workspace_pool.hpp"
#endif
#include "moekit/backend.hpp"
#include "moekit/error.hpp"

namespace moekit {

namespace {

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "(none)" : s;
}

}  // namespace

void Registry::add(std::unique_ptr<Backend> backend) { add_entry(std::move(backend), false); }

void Registry::add_entry(std::unique_ptr<Backend> backend, bool reserved_ok) {
  if (!backend) throw Error(Errc::invalid_argument, "cannot register a null backend");
  const std::string_view name = backend->name();
  if (name.empty()) throw Error(Errc::invalid_argument, "a backend needs a non-empty name");
  if (name == kReservedBackendName && !reserved_ok)
    throw Error(Errc::invalid_argument, "the backend name 'auto' is reserved for moekit's own chooser");
  if (find(name, backend->device()))
    throw Error(Errc::invalid_argument, "a backend named '" + std::string(name) + "' is already registered for " +
                                            std::string(device_type_name(backend->device())));
  backends_.push_back(std::move(backend));
}

const Backend* Registry::find(std::string_view name, DeviceType device) const noexcept {
  for (const auto& b : backends_)
    if (b->name() == name && b->device() == device) return b.get();
  return nullptr;
}

const Backend& Registry::get(std::string_view name, DeviceType device) const {
  if (const Backend* b = find(name, device)) return *b;
  const std::string dev(device_type_name(device));
  if (name == kReservedBackendName)
    throw Error(Errc::not_found, "backend 'auto' is reserved for moekit's chooser, which picks among the CUDA "
                                 "backends only; valid backends for " + dev + ": " + join(names(device)));
  throw Error(Errc::not_found,
              "unknown backend '" + std::string(name) + "' for " + dev + "; valid backends: " + join(names(device)));
}

std::vector<const Backend*> Registry::list() const {
  std::vector<const Backend*> out;
  for (const auto& b : backends_) out.push_back(b.get());
  return out;
}

std::vector<std::string> Registry::names(DeviceType device) const {
  std::vector<std::string> out;
  for (const auto& b : backends_)
    if (b->device() == device) out.emplace_back(b->name());
  return out;
}

// The built-in backends, listed explicitly: adding one means adding a line here.
void register_builtin_backends(Registry& registry) {
  registry.add(cpu::make_eager_backend());
  registry.add(cpu::make_batched_mm_backend());
  registry.add(cpu::make_grouped_mm_backend());
#if MOEKIT_HAVE_CUDA
  registry.add(cuda::make_eager_backend());
  registry.add(cuda::make_batched_mm_backend());
  registry.add(cuda::make_grouped_mm_backend());
  registry.add(cuda::make_fused_backend());
  registry.add_entry(cuda::make_auto_backend(), true);
#endif
}

Registry& default_registry() {
  static Registry registry = [] {
    Registry r;
    register_builtin_backends(r);
    return r;
  }();
  return registry;
}

void experts(const ExpertsCall& call, std::string_view backend_name, const RunContext& context,
             Workspace workspace, const Registry& registry) {
  const ExpertsProblem problem = validate(call);
  const Backend& backend = registry.get(backend_name, problem.device.type);
  if (Support s = backend.available(); !s.ok)
    throw Error(Errc::unsupported, "backend '" + std::string(backend_name) + "' is not available: " + s.reason);
  if (Support s = backend.supports(problem); !s.ok)
    throw Error(Errc::unsupported,
                "backend '" + std::string(backend_name) + "' does not support " + problem.describe() + ": " + s.reason);
  const std::size_t need = backend.workspace_bytes(problem);
  if (workspace.data != nullptr && workspace.bytes < need)
    throw Error(Errc::invalid_argument, "workspace of " + std::to_string(workspace.bytes) + " bytes is too small; '" +
                                            std::string(backend_name) + "' needs " + std::to_string(need));
  if (workspace.data != nullptr && reinterpret_cast<std::uintptr_t>(workspace.data) % 64 != 0)
    throw Error(Errc::invalid_argument, "workspace must be 64-byte aligned");

  std::unique_ptr<void, decltype(&std::free)> owned(nullptr, &std::free);
#if MOEKIT_HAVE_CUDA
  // Device scratch comes from a per-device cache (cuda/workspace_pool.hpp): no cudaMalloc once warm.
  std::unique_ptr<cuda::PooledWorkspace> pooled;
  if (workspace.data == nullptr && need > 0 && problem.device.type == DeviceType::cuda) {
    pooled = cuda::acquire_workspace(problem.device.index, need, context.stream);
    workspace = pooled->get();
  }
#endif
  if (workspace.data == nullptr && need > 0) {
    if (problem.device.type != DeviceType::cpu)
      throw Error(Errc::invalid_argument, "pass a device workspace of " + std::to_string(need) + " bytes for '" +
                                              std::string(backend_name) + "'");
    owned.reset(std::aligned_alloc(64, (need + 63) / 64 * 64));
    if (!owned)
      throw Error(Errc::out_of_memory, "cannot allocate the " + std::to_string(need) + "-byte workspace of '" +
                                           std::string(backend_name) + "'");
    workspace = {owned.get(), need};
  }
  backend.run(call, problem, workspace, context);
}

}  // namespace moekit

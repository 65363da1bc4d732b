// moekit: the interface every experts backend implements, and the registry that lists them.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "moekit/experts.hpp"

namespace moekit {

struct Support {
  bool ok = true;
  std::string reason;  // why not, when !ok
  static Support yes() { return {}; }
  static Support no(std::string why) { return {false, std::move(why)}; }
};

// Per-call execution settings.
struct RunContext {
  int threads = 0;         // CPU: worker threads for this call; 0 = all hardware threads
  void* stream = nullptr;  // CUDA: the cudaStream_t to run on; nullptr = the default stream
};

// Scratch memory the caller provides: at least workspace_bytes(problem), 64-byte aligned,
// on the backend's device.
struct Workspace {
  void* data = nullptr;
  std::size_t bytes = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  virtual DeviceType device() const = 0;
  // Whether this build and machine can run the backend at all (e.g. no GPU present).
  virtual Support available() const { return Support::yes(); }
  // Whether it can run this validated problem.
  virtual Support supports(const ExpertsProblem& problem) const = 0;
  virtual std::size_t workspace_bytes(const ExpertsProblem& problem) const = 0;
  // `problem` is validate(call); `call.output` is fully written.
  virtual void run(const ExpertsCall& call, const ExpertsProblem& problem, Workspace workspace,
                   const RunContext& context) const = 0;
};

// An explicit list of backends. No static registration: the built-in ones are added by
// register_builtin_backends(), which default_registry() calls once.
class Registry {
 public:
  // Adds a backend. Throws if (name, device) is taken or the name is reserved ("auto").
  void add(std::unique_ptr<Backend> backend);
  // Throws Errc::not_found listing the valid names for that device when there is no such backend.
  const Backend& get(std::string_view name, DeviceType device) const;
  const Backend* find(std::string_view name, DeviceType device) const noexcept;
  std::vector<const Backend*> list() const;
  std::vector<std::string> names(DeviceType device) const;

 private:
  // The built-in chooser is the one backend allowed the reserved name.
  friend void register_builtin_backends(Registry& registry);
  void add_entry(std::unique_ptr<Backend> backend, bool reserved_ok);
  std::vector<std::unique_ptr<Backend>> backends_;
};

inline constexpr std::string_view kReservedBackendName = "auto";

void register_builtin_backends(Registry& registry);
Registry& default_registry();  // thread-safe lazy construction; add() to it before concurrent use

// Validates, looks the backend up, checks supports(), allocates the workspace when none is given
// and runs. Throws moekit::Error on any problem; never falls back to another backend.
void experts(const ExpertsCall& call, std::string_view backend = "grouped_mm",
             const RunContext& context = {}, Workspace workspace = {},
             const Registry& registry = default_registry());

}  // namespace moekit

// The C API (include/moekit/moekit.h): DLPack tensors to TensorViews, exceptions to status codes
// and a per-thread message. Nothing here computes; moekit::experts() validates and runs.
#include "moekit/moekit.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "moekit/backend.hpp"
#include "moekit/error.hpp"
#include "moekit/experts.hpp"
#include "capi/capi_common.hpp"

#ifndef MOEKIT_VERSION_STRING
#define MOEKIT_VERSION_STRING "unknown"
#endif

namespace {

using namespace moekit;
using namespace moekit::capi;

// Fields up to and including `threads` make the first version of the options struct; a caller
// compiled against it passes at least this size.
constexpr std::size_t kOptionsV1Size = offsetof(moekit_experts_options, threads) + sizeof(std::int32_t);

ExpertsOptions to_options(const moekit_experts_options* o) {
  ExpertsOptions opt;
  if (o == nullptr) return opt;
  if (o->struct_size < kOptionsV1Size)
    fail("moekit_experts_options.struct_size is " + std::to_string(o->struct_size) + ", expected at least " +
         std::to_string(kOptionsV1Size) + " (call moekit_experts_options_init first)");
  if (o->activation != nullptr) {
    auto a = parse_activation(o->activation);
    if (!a)
      fail("unknown activation '" + std::string(o->activation) +
           "'; valid: silu, gelu, gelu_tanh, relu, clamped_swiglu");
    opt.activation = *a;
  }
  opt.gate_layout = o->interleaved ? GateLayout::interleaved : GateLayout::concatenated;
  opt.has_gate = o->has_gate != 0;
  opt.transposed = o->transposed != 0;
  opt.swiglu_alpha = o->swiglu_alpha;
  opt.swiglu_limit = o->swiglu_limit;
  return opt;
}

}  // namespace

extern "C" {

void moekit_experts_options_init(moekit_experts_options* options) {
  if (options == nullptr) return;
  const ExpertsOptions defaults;
  std::memset(options, 0, sizeof(*options));
  options->struct_size = sizeof(moekit_experts_options);
  options->activation = nullptr;
  options->interleaved = defaults.gate_layout == GateLayout::interleaved;
  options->has_gate = defaults.has_gate;
  options->transposed = defaults.transposed;
  options->swiglu_alpha = defaults.swiglu_alpha;
  options->swiglu_limit = defaults.swiglu_limit;
  options->threads = 0;
}

int moekit_experts(const DLTensor* hidden_states, const DLTensor* top_k_index, const DLTensor* top_k_weights,
                   const DLTensor* gate_up_proj, const DLTensor* down_proj, const DLTensor* gate_up_proj_bias,
                   const DLTensor* down_proj_bias, const DLTensor* output, const moekit_experts_options* options,
                   const char* backend, void* stream) {
  return guarded([&] {
    ExpertsCall call;
    call.hidden_states = to_view(hidden_states, "hidden_states");
    call.top_k_index = to_view(top_k_index, "top_k_index");
    call.top_k_weights = to_view(top_k_weights, "top_k_weights");
    call.gate_up_proj = to_view(gate_up_proj, "gate_up_proj");
    call.down_proj = to_view(down_proj, "down_proj");
    call.gate_up_proj_bias = to_view(gate_up_proj_bias, "gate_up_proj_bias");
    call.down_proj_bias = to_view(down_proj_bias, "down_proj_bias");
    call.output = to_view(output, "output");
    call.options = to_options(options);
    if (options != nullptr && options->threads < 0)
      fail("moekit_experts_options.threads must be >= 0 (0 = all hardware threads), got " +
           std::to_string(options->threads));

    const std::string_view name = backend != nullptr ? std::string_view(backend) : std::string_view("grouped_mm");
    // A build without CUDA would otherwise answer "unknown backend ... (none)" for device tensors.
    if (call.hidden_states.defined() && call.hidden_states.device.type == DeviceType::cuda &&
        default_registry().names(DeviceType::cuda).empty())
      throw Error(Errc::unsupported, "hidden_states is on " + device_name(call.hidden_states.device) +
                                         " but this libmoekit was built without the CUDA backends");

    RunContext context;
    context.threads = options != nullptr ? options->threads : 0;
    context.stream = stream;
    experts(call, name, context);
  });
}

const char* moekit_last_error(void) { return g_last_error.c_str(); }

const char* moekit_status_name(int status) {
  switch (status) {
    case MOEKIT_OK: return "ok";
    case MOEKIT_ERROR_INVALID_ARGUMENT: return "invalid_argument";
    case MOEKIT_ERROR_UNSUPPORTED: return "unsupported";
    case MOEKIT_ERROR_NOT_FOUND: return "not_found";
    case MOEKIT_ERROR_OUT_OF_MEMORY: return "out_of_memory";
    case MOEKIT_ERROR_DEVICE: return "device";
    case MOEKIT_ERROR_INTERNAL: return "internal";
    default: return "unknown";
  }
}

int moekit_backends(char* buffer, size_t capacity, size_t* length) {
  return guarded([&] {
    if (capacity > 0 && buffer == nullptr) fail("moekit_backends: buffer is NULL but capacity is " + std::to_string(capacity));
    std::string text;
    for (const Backend* b : default_registry().list()) {
      text.append(b->name()).append("\t").append(device_type_name(b->device())).append("\t");
      const Support s = b->available();
      text.append(s.ok ? "available" : "unavailable: " + s.reason).append("\n");
    }
    if (length != nullptr) *length = text.size();
    if (capacity > 0) {
      const std::size_t n = std::min(text.size(), capacity - 1);
      std::memcpy(buffer, text.data(), n);
      buffer[n] = '\0';
    }
  });
}

int moekit_abi_version(void) { return MOEKIT_ABI_VERSION; }

const char* moekit_version(void) { return MOEKIT_VERSION_STRING; }

}  // extern "C"

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

#ifndef MOEKIT_VERSION_STRING
#define MOEKIT_VERSION_STRING "unknown"
#endif

namespace {

using namespace moekit;

thread_local std::string g_last_error;

// Fields up to and including `threads` make the first version of the options struct; a caller
// compiled against it passes at least this size.
constexpr std::size_t kOptionsV1Size = offsetof(moekit_experts_options, threads) + sizeof(std::int32_t);

[[noreturn]] void fail(const std::string& msg) { throw Error(Errc::invalid_argument, msg); }

int status_of(Errc code) {
  switch (code) {
    case Errc::invalid_argument: return MOEKIT_ERROR_INVALID_ARGUMENT;
    case Errc::unsupported: return MOEKIT_ERROR_UNSUPPORTED;
    case Errc::not_found: return MOEKIT_ERROR_NOT_FOUND;
    case Errc::out_of_memory: return MOEKIT_ERROR_OUT_OF_MEMORY;
    case Errc::device: return MOEKIT_ERROR_DEVICE;
  }
  return MOEKIT_ERROR_INTERNAL;
}

// Runs `body`, turning every exception into a status and the thread's last error.
template <class F>
int guarded(F&& body) noexcept {
  try {
    body();
    return MOEKIT_OK;
  } catch (const Error& e) {
    g_last_error = e.what();
    return status_of(e.code());
  } catch (const std::bad_alloc&) {
    g_last_error = "out of memory";
    return MOEKIT_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    g_last_error = std::string("internal error: ") + e.what();
    return MOEKIT_ERROR_INTERNAL;
  } catch (...) {
    g_last_error = "internal error: unknown exception";
    return MOEKIT_ERROR_INTERNAL;
  }
}

std::string dtype_string(DLDataType t) {
  const char* code = t.code == kDLInt      ? "int"
                     : t.code == kDLUInt   ? "uint"
                     : t.code == kDLFloat  ? "float"
                     : t.code == kDLBfloat ? "bfloat"
                     : t.code == kDLBool   ? "bool"
                     : t.code == kDLComplex ? "complex"
                                           : nullptr;
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string.
  std::string s = code ? std::string(code) : std::string("DLPack type code ");
  s.append(std::to_string(code ? int(t.bits) : int(t.code)));
  if (t.lanes != 1) s.append("x").append(std::to_string(t.lanes));
  return s;
}

DType to_dtype(DLDataType t, const char* name) {
  if (t.lanes == 1) {
    if (t.code == kDLFloat && t.bits == 32) return DType::f32;
    if (t.code == kDLFloat && t.bits == 16) return DType::f16;
    if (t.code == kDLBfloat && t.bits == 16) return DType::bf16;
    if (t.code == kDLFloat && t.bits == 64) return DType::f64;
    if (t.code == kDLInt && t.bits == 32) return DType::i32;
    if (t.code == kDLInt && t.bits == 64) return DType::i64;
  }
  fail(std::string(name) + " has element type " + dtype_string(t) +
       "; moekit takes bfloat16, float16, float32, int32 and int64 tensors");
}

Device to_device(DLDevice d, const char* name) {
  switch (d.device_type) {
    // Page-locked host memory is ordinary host memory to the CPU backends.
    case kDLCPU:
    case kDLCUDAHost: return Device{DeviceType::cpu, 0};
    case kDLCUDA:
      if (d.device_id < 0) fail(std::string(name) + " has a negative CUDA device id " + std::to_string(d.device_id));
      return Device{DeviceType::cuda, d.device_id};
    case kDLCUDAManaged:
      fail(std::string(name) + " is in CUDA managed memory, which moekit does not take: copy it to the device "
                               "(kDLCUDA) or to the host");
    default:
      fail(std::string(name) + " is on DLPack device type " + std::to_string(int(d.device_type)) +
           "; moekit takes host (kDLCPU, kDLCUDAHost) and CUDA (kDLCUDA) tensors");
  }
}

// A view of a DLTensor, strides kept as given; validate() decides whether they are acceptable.
TensorView to_view(const DLTensor* t, const char* name) {
  TensorView v;
  if (t == nullptr) return v;  // undefined: validate() reports a required one as missing
  if (t->ndim < 1 || t->ndim > kMaxRank)
    fail(std::string(name) + " has " + std::to_string(t->ndim) + " dimensions; moekit's tensors have 1 to " +
         std::to_string(kMaxRank));
  if (t->shape == nullptr) fail(std::string(name) + " has a null shape array");
  v.dtype = to_dtype(t->dtype, name);
  v.device = to_device(t->device, name);
  v.rank = t->ndim;
  for (int d = 0; d < t->ndim; ++d) {
    if (t->shape[d] < 0) fail(std::string(name) + " has a negative dimension " + std::to_string(t->shape[d]));
    v.shape[d] = t->shape[d];
  }
  if (t->strides != nullptr) {
    for (int d = 0; d < t->ndim; ++d) v.strides[d] = t->strides[d];
  } else {
    std::int64_t stride = 1;
    for (int d = t->ndim - 1; d >= 0; --d) {
      v.strides[d] = stride;
      if (v.shape[d] != 0 && stride > INT64_MAX / v.shape[d])
        fail(std::string(name) + " shape " + v.shape_string() + " overflows 64-bit sizes");
      stride *= v.shape[d];
    }
  }
  if (t->byte_offset % dtype_size(v.dtype) != 0)
    fail(std::string(name) + " has a byte_offset of " + std::to_string(t->byte_offset) +
         ", not a multiple of its element size");
  v.data = t->data == nullptr ? nullptr : static_cast<char*>(t->data) + t->byte_offset;
  return v;
}

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

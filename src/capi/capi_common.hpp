// moekit internal: what every C API source shares: DLPack tensors to TensorViews, exceptions to
// status codes and the per-thread message.
#pragma once

#include <cstddef>
#include <exception>
#include <new>
#include <string>

#include "moekit/error.hpp"
#include "moekit/moekit.h"
#include "moekit/tensor.hpp"

namespace moekit::capi {
inline thread_local std::string g_last_error;

[[noreturn]] inline void fail(const std::string& msg) { throw Error(Errc::invalid_argument, msg); }

inline int status_of(Errc code) {
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
inline int guarded(F&& body) noexcept {
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

inline std::string dtype_string(DLDataType t) {
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

inline DType to_dtype(DLDataType t, const char* name) {
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

inline Device to_device(DLDevice d, const char* name) {
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
inline TensorView to_view(const DLTensor* t, const char* name) {
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

}  // namespace moekit::capi

// moekit CPU: the kernel table in use, chosen once from CPUID and MOEKIT_CPU_ISA.
#pragma once

#include "cpu/kernels/gemm.hpp"
#include "moekit/dtype.hpp"

namespace moekit::cpu {

// Throws moekit::Error when MOEKIT_CPU_ISA asks for something this build or CPU cannot run.
const kernels::KernelTable& kernel_table();

// The kernel tables' index for a floating dtype (bf16, f16, f32).
inline kernels::WType wtype(DType t) noexcept {
  return t == DType::bf16 ? kernels::w_bf16 : t == DType::f16 ? kernels::w_f16 : kernels::w_f32;
}

}  // namespace moekit::cpu

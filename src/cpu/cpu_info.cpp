// CPU feature detection and the one-time choice of the kernel table.
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "cpu/isa.hpp"
#include "cpu/thread_pool.hpp"
#include "moekit/cpu.hpp"
#include "moekit/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define MOEKIT_X86 1
#endif
#ifndef MOEKIT_HAVE_AVX512_KERNELS
#define MOEKIT_HAVE_AVX512_KERNELS 0
#endif

namespace moekit {
namespace {

struct Features {
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false, avx512_fp16 = false, fma = false, f16c = false;
};

Features detect() {
  Features f;
#if MOEKIT_X86
  // libgcc's checks include the OS's XSAVE support for the wide registers, not just CPUID bits.
  __builtin_cpu_init();
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
  f.fma = __builtin_cpu_supports("fma");
#if defined(__clang__) && __clang_major__ < 16
  // clang before 16 knows neither name in __builtin_cpu_supports (the fuzz build uses clang 14):
  // read the CPUID bits, gated on the features whose checks include the OS register state.
  unsigned a = 0, b = 0, c = 0, d = 0;
  f.f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) && __builtin_cpu_supports("avx");
  f.avx512_fp16 = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 23)) && f.avx512f;
#else
  f.avx512_fp16 = __builtin_cpu_supports("avx512fp16");
  f.f16c = __builtin_cpu_supports("f16c");
#endif
#endif
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") + 1 - b);
}

std::string cpu_model() {
#if MOEKIT_X86
  unsigned regs[12] = {};
  unsigned top = __get_cpuid_max(0x80000000u, nullptr);
  if (top >= 0x80000004u) {
    for (unsigned i = 0; i < 3; ++i)
      __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
    std::string s(reinterpret_cast<const char*>(regs), sizeof(regs));
    s = trim(s.substr(0, s.find('\0')));
    if (!s.empty()) return s;
  }
#endif
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon));
    if (key == "model name" || key == "Model" || key == "cpu model") return trim(line.substr(colon + 1));
  }
  return "unknown";
}

bool avx512_kernels_runnable() {
#if MOEKIT_HAVE_AVX512_KERNELS
  const Features& f = features();
  return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma && f.f16c;
#else
  return false;
#endif
}

const cpu::kernels::KernelTable& select_table() {
  const char* env = std::getenv("MOEKIT_CPU_ISA");
  const std::string_view want = env ? std::string_view(env) : std::string_view();
  if (want == "generic") return cpu::kernels::generic_table();
  if (!want.empty() && want != "avx512")
    throw Error(Errc::invalid_argument,
                "MOEKIT_CPU_ISA='" + std::string(want) + "' is not a kernel ISA; use 'generic' or 'avx512'");
  const bool avx512 = avx512_kernels_runnable();
  if (want == "avx512" && !avx512)
    throw Error(Errc::unsupported, MOEKIT_HAVE_AVX512_KERNELS
                                       ? "MOEKIT_CPU_ISA=avx512, but this CPU lacks AVX-512 F/BW/VL/DQ with FMA and F16C"
                                       : "MOEKIT_CPU_ISA=avx512, but this build has no AVX-512 kernels");
#if MOEKIT_HAVE_AVX512_KERNELS
  if (avx512) return cpu::kernels::avx512_table();
#endif
  return cpu::kernels::generic_table();
}

}  // namespace

namespace cpu {
const kernels::KernelTable& kernel_table() {
  // A throwing initialiser leaves the static uninitialised, so every call reports the error.
  static const kernels::KernelTable& table = select_table();
  return table;
}
}  // namespace cpu

CpuInfo cpu_info() {
  const Features& f = features();
  CpuInfo info;
  info.avx512f = f.avx512f;
  info.avx512bw = f.avx512bw;
  info.avx512_bf16 = f.avx512_bf16;
  info.avx512_fp16 = f.avx512_fp16;
  info.fma = f.fma;
  info.f16c = f.f16c;
  info.hardware_threads = cpu::hardware_threads();
  info.kernel_isa = cpu::kernel_table().isa;
  static const std::string model = cpu_model();
  info.model = model;
  return info;
}

}  // namespace moekit

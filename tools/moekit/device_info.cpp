// How `moekit` names the device it measured on, for headers and the JSON/CSV records.
#include "bench.hpp"
#include "moekit/cpu.hpp"
#include "table.hpp"

namespace moekit_cli {

DeviceDescription describe_device(moekit::DeviceType device, int threads) {
  DeviceDescription d;
  d.type = std::string(moekit::device_type_name(device));
  const moekit::CpuInfo info = moekit::cpu_info();
  d.cpu_model = info.model;
  d.isa = info.kernel_isa;
  d.threads = threads > 0 ? threads : info.hardware_threads;
  std::string features;
  for (auto [on, name] : {std::pair{info.avx512f, "avx512f"}, {info.avx512bw, "avx512bw"},
                          {info.avx512_bf16, "avx512_bf16"}, {info.avx512_fp16, "avx512_fp16"},
                          {info.fma, "fma"}, {info.f16c, "f16c"}})
    if (on) {
      if (!features.empty()) features += ' ';
      features += name;
    }
  d.text = d.cpu_model + "; " + d.isa + " kernels; " + count_of(d.threads, "thread") +
           (features.empty() ? "" : "; cpu features: " + features);
  if (device == moekit::DeviceType::cuda) {
    // The host still builds the inputs and routing, so it stays in the record, after the GPU.
    d.gpu = describe_gpu();
    d.text = gpu_text(*d.gpu) + "; host: " + d.cpu_model + ", " + count_of(d.threads, "thread");
  }
  return d;
}

}  // namespace moekit_cli

// Whether a CUDA bench plan fits in the device's free memory, checked before anything is
// allocated, so that a run that cannot fit stops with one line instead of failing half-way.
#if MOEKIT_HAVE_CUDA

#include "bench.hpp"
#include "cli.hpp"
#include "cuda_util.hpp"
#include "table.hpp"

namespace moekit_cli {

namespace {

using u64 = std::uint64_t;

// The device buffers bench_cuda_run.cpp allocates for the layer, each rounded like cudaMalloc.
u64 device_weight_bytes(const BenchShape& s) {
  const u64 d = moekit::dtype_size(s.dtype), E = u64(s.experts), H = u64(s.hidden), I = u64(s.intermediate);
  const u64 R = u64(s.gate_up_rows());
  u64 bytes = cu::allocation_bytes(E * R * H * d) + cu::allocation_bytes(E * H * I * d);
  if (s.bias) bytes += cu::allocation_bytes(E * R * d) + cu::allocation_bytes(E * H * d);
  return bytes;
}

u64 device_input_bytes(const BenchShape& s, std::int64_t T) {
  const u64 d = moekit::dtype_size(s.dtype), t = u64(T);
  return 2 * cu::allocation_bytes(t * u64(s.hidden) * d) + cu::allocation_bytes(t * u64(s.top_k) * 4) +
         cu::allocation_bytes(t * u64(s.top_k) * 4);
}

}  // namespace

void check_device_memory(const BenchPlan& plan) {
  const cu::MemInfo m = cu::mem_info();
  const std::string free_text = bytes_iec(m.free) + " free on cuda:0 (of " + bytes_iec(m.total) + ")";
  const u64 ceiling = cuda_ceiling_memory_bytes(plan.shape.dtype);
  if (ceiling > m.free)
    usage("not enough device memory: measuring the ceilings needs " + bytes_iec(ceiling) + ", more than the " +
          free_text);
  // Sizes were overflow-checked by check_sizes; the device buffers are the same tensors.
  const u64 weights = device_weight_bytes(plan.shape) * u64(plan.layers);
  for (std::int64_t T : plan.tokens) {
    const u64 inputs = device_input_bytes(plan.shape, T) * u64(plan.layers);
    const u64 base = weights + inputs;
    if (base > m.free)
      usage("not enough device memory: at T=" + std::to_string(T) + " the layer needs " + bytes_iec(base) +
            " (weights " + bytes_iec(weights) + " + inputs and output " + bytes_iec(inputs) + "), more than the " +
            free_text);
    const moekit::ExpertsProblem problem = planned_problem(plan.shape, T, plan.device);
    for (const moekit::Backend* b : plan.backends) {
      if (!b->supports(problem).ok) continue;
      const u64 ws = cu::allocation_bytes(b->workspace_bytes(problem));
      if (ws > m.free - base)
        usage("not enough device memory: backend '" + std::string(b->name()) + "' needs " + bytes_iec(ws) +
              " of workspace at T=" + std::to_string(T) + ", more than the " + bytes_iec(m.free - base) +
              " left of the " + free_text + " besides the " + bytes_iec(base) + " of weights, inputs and output");
    }
  }
}

}  // namespace moekit_cli

#endif  // MOEKIT_HAVE_CUDA

// The device side of the check harness: host inputs go to the GPU, the backend runs there on a
// NaN-poisoned output and a 0xFF-poisoned workspace, and the output comes back.
#include <vector>

#include "core/device_staging.hpp"
#include "cuda/common.hpp"

namespace moekit {
namespace {

// Bytes from the first to one past the last element a view touches (padding rows included).
std::size_t span_bytes(const TensorView& t) {
  if (!t.defined() || t.numel() == 0) return 0;
  std::int64_t last = 0;
  for (int d = 0; d < t.rank; ++d) last += (t.shape[d] - 1) * t.strides[d];
  return std::size_t(last + 1) * dtype_size(t.dtype);
}

class DeviceBuffers {
 public:
  ~DeviceBuffers() {
    for (void* p : owned_) cudaFree(p);
  }
  void* allocate(std::size_t bytes) {
    void* p = nullptr;
    if (bytes == 0) return nullptr;
    cuda::check(cudaMalloc(&p, bytes), "check staging: cudaMalloc");
    owned_.push_back(p);
    return p;
  }
  // A device copy of `t` with the same shape and strides.
  TensorView upload(const TensorView& t, int device) {
    TensorView d = t;
    if (!t.defined()) return d;
    d.device = Device{DeviceType::cuda, device};
    const std::size_t bytes = span_bytes(t);
    d.data = allocate(bytes);
    if (bytes) cuda::check(cudaMemcpy(d.data, t.data, bytes, cudaMemcpyHostToDevice), "check staging: upload");
    return d;
  }

 private:
  std::vector<void*> owned_;
};

}  // namespace

void run_staged_on_device(const Backend& backend, const ExpertsCall& host_call, const ExpertsProblem& /*host*/,
                          const RunContext& context) {
  constexpr int device = 0;
  cuda::DeviceGuard guard(device);
  DeviceBuffers buffers;
  ExpertsCall call = host_call;
  call.hidden_states = buffers.upload(host_call.hidden_states, device);
  call.top_k_index = buffers.upload(host_call.top_k_index, device);
  call.top_k_weights = buffers.upload(host_call.top_k_weights, device);
  call.gate_up_proj = buffers.upload(host_call.gate_up_proj, device);
  call.down_proj = buffers.upload(host_call.down_proj, device);
  call.gate_up_proj_bias = buffers.upload(host_call.gate_up_proj_bias, device);
  call.down_proj_bias = buffers.upload(host_call.down_proj_bias, device);
  call.output = host_call.output;
  call.output.device = Device{DeviceType::cuda, device};
  const std::size_t out_bytes = span_bytes(host_call.output);
  call.output.data = buffers.allocate(out_bytes);
  // All-ones bytes are NaN in bf16, f16 and f32: an element the backend never writes stays NaN,
  // padding included, and comes back that way.
  if (out_bytes) cuda::check(cudaMemset(call.output.data, 0xff, out_bytes), "check staging: poisoning the output");

  const ExpertsProblem problem = validate(call);
  const std::size_t ws_bytes = backend.workspace_bytes(problem);
  void* ws = buffers.allocate(ws_bytes);
  if (ws_bytes) cuda::check(cudaMemset(ws, 0xff, ws_bytes), "check staging: poisoning the workspace");
  cuda::check(cudaDeviceSynchronize(), "check staging: before the run");

  backend.run(call, problem, Workspace{ws, ws_bytes}, context);
  cuda::check(cudaGetLastError(), "check staging: after the run");
  cuda::check(cudaDeviceSynchronize(), "check staging: the run");
  if (out_bytes)
    cuda::check(cudaMemcpy(host_call.output.data, call.output.data, out_bytes, cudaMemcpyDeviceToHost),
                "check staging: download");
}

}  // namespace moekit

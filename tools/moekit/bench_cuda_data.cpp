#if MOEKIT_HAVE_CUDA

#include "bench_cuda_data.hpp"

#include <cmath>

namespace moekit_cli {

namespace {

constexpr moekit::Device kDevice{moekit::DeviceType::cuda, 0};

std::uint64_t count(std::initializer_list<std::int64_t> shape) {
  std::uint64_t n = 1;
  for (std::int64_t d : shape) n *= std::uint64_t(d);
  return n;
}

cu::DeviceBuffer random_buffer(moekit::DType dtype, std::uint64_t n, float scale, std::uint64_t seed, int threads,
                               const std::string& what) {
  cu::DeviceBuffer b(n * moekit::dtype_size(dtype), what);
  cu::upload_uniform(b.get(), dtype, n, scale, seed, threads);
  return b;
}

}  // namespace

DeviceWeights upload_weights(const BenchShape& s, std::uint64_t seed, int threads) {
  const std::int64_t E = s.experts, H = s.hidden, I = s.intermediate, R = s.gate_up_rows();
  DeviceWeights w;
  w.gate_up = random_buffer(s.dtype, count({E, R, H}), 1.0f / std::sqrt(float(H)), seed + 1, threads, "gate_up_proj");
  w.down = random_buffer(s.dtype, count({E, H, I}), 1.0f / std::sqrt(float(I)), seed + 2, threads, "down_proj");
  if (s.bias) {
    w.gate_up_bias = random_buffer(s.dtype, count({E, R}), 0.1f, seed + 3, threads, "gate_up_proj_bias");
    w.down_bias = random_buffer(s.dtype, count({E, H}), 0.1f, seed + 4, threads, "down_proj_bias");
  }
  // Pageable uploads may still be in flight on the legacy stream, which the bench's non-blocking
  // stream does not wait for.
  cu::check(cudaDeviceSynchronize(), "uploading the weights");
  return w;
}

DeviceWeights upload_weights(const moekit::MoeWeights& host) {
  auto copy = [](const moekit::Tensor& t, const char* what) {
    if (t.numel() == 0) return cu::DeviceBuffer();
    cu::DeviceBuffer b(t.nbytes(), what);
    cu::upload(b.get(), t.data<void>(), t.nbytes(), what);
    return b;
  };
  DeviceWeights w;
  w.gate_up = copy(host.gate_up, "gate_up_proj");
  w.down = copy(host.down, "down_proj");
  w.gate_up_bias = copy(host.gate_up_bias, "gate_up_proj_bias");
  w.down_bias = copy(host.down_bias, "down_proj_bias");
  cu::check(cudaDeviceSynchronize(), "uploading the weights");
  return w;
}

DeviceInputs upload_inputs(const BenchInputs& host) {
  DeviceInputs d;
  d.hidden = cu::DeviceBuffer(host.hidden.nbytes(), "hidden_states");
  d.top_k_index = cu::DeviceBuffer(host.top_k_index.nbytes(), "top_k_index");
  d.top_k_weights = cu::DeviceBuffer(host.top_k_weights.nbytes(), "top_k_weights");
  d.output = cu::DeviceBuffer(host.output.nbytes(), "the output");
  cu::upload(d.hidden.get(), host.hidden.data<void>(), host.hidden.nbytes(), "hidden_states");
  cu::upload(d.top_k_index.get(), host.top_k_index.data<void>(), host.top_k_index.nbytes(), "top_k_index");
  cu::upload(d.top_k_weights.get(), host.top_k_weights.data<void>(), host.top_k_weights.nbytes(), "top_k_weights");
  cu::check(cudaDeviceSynchronize(), "uploading the inputs");
  return d;
}

moekit::ExpertsCall make_device_call(const BenchShape& s, const DeviceWeights& w, const DeviceInputs& in,
                                     std::int64_t T) {
  using moekit::TensorView;
  const std::int64_t E = s.experts, H = s.hidden, I = s.intermediate, R = s.gate_up_rows(), K = s.top_k;
  moekit::ExpertsCall call;
  call.hidden_states = TensorView::contiguous(in.hidden.get(), s.dtype, {T, H}, kDevice);
  call.top_k_index = TensorView::contiguous(in.top_k_index.get(), moekit::DType::i32, {T, K}, kDevice);
  call.top_k_weights = TensorView::contiguous(in.top_k_weights.get(), moekit::DType::f32, {T, K}, kDevice);
  call.gate_up_proj = s.options.transposed ? TensorView::contiguous(w.gate_up.get(), s.dtype, {E, H, R}, kDevice)
                                           : TensorView::contiguous(w.gate_up.get(), s.dtype, {E, R, H}, kDevice);
  call.down_proj = s.options.transposed ? TensorView::contiguous(w.down.get(), s.dtype, {E, I, H}, kDevice)
                                        : TensorView::contiguous(w.down.get(), s.dtype, {E, H, I}, kDevice);
  if (s.bias) {
    call.gate_up_proj_bias = TensorView::contiguous(w.gate_up_bias.get(), s.dtype, {E, R}, kDevice);
    call.down_proj_bias = TensorView::contiguous(w.down_bias.get(), s.dtype, {E, H}, kDevice);
  }
  call.output = TensorView::contiguous(in.output.get(), s.dtype, {T, H}, kDevice);
  call.options = s.options;
  return call;
}

}  // namespace moekit_cli

#endif  // MOEKIT_HAVE_CUDA

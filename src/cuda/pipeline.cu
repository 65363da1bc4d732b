// The shared steps of the CUDA backends; see pipeline.hpp for the workspace layout.
#include "cuda/pipeline.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cuda/common.hpp"
#include "cuda/kernels/combine.cuh"
#include "cuda/kernels/fused_gemv.cuh"
#include "cuda/kernels/gemm_dispatch.cuh"
#include "cuda/kernels/routing.cuh"

namespace moekit::cuda {

extern template cudaError_t kernels::launch_grouped_gemm<__nv_bfloat16>(const kernels::GroupedGemmParams&, bool,
                                                                        bool, int, int, cudaStream_t);
extern template cudaError_t kernels::launch_grouped_gemm<__half>(const kernels::GroupedGemmParams&, bool, bool, int,
                                                                 int, cudaStream_t);
extern template cudaError_t kernels::launch_grouped_gemm<float>(const kernels::GroupedGemmParams&, bool, bool, int,
                                                                int, cudaStream_t);

namespace {

constexpr std::size_t kAlign = 256;
constexpr int kMinTileRows = 16;  // the smallest bm of any plan: sizes the tile list

std::size_t align_up(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Rows per tile for the tensor-core path from the mean rows per expert, T*K/E (sizes only): the
// smallest tile that holds the mean. Taller tiles re-use each loaded weight slice for more rows
// but waste more MMA rows on each expert's last tile; an expert's second tile reads the slices
// its first just read, from L2 (its tiles are in one raster group). Tiles 1.25x the mean lost
// to this at qwen3-30b T = 512 (64 rows: 0.545 ms, 32 rows: 0.516; docs/perf-notes.md v8).
int tc_tile_rows(const ExpertsProblem& p) {
  if (const char* env = std::getenv("MOEKIT_CUDA_TILE_M")) {  // tuning knob, see docs/perf-notes.md
    const int bm = std::atoi(env);
    if (!kernels::tc_tile_rows_supported(bm))
      throw Error(Errc::invalid_argument, "MOEKIT_CUDA_TILE_M must be 16, 32, 64 or 128, got '" + std::string(env) + "'");
    return bm;
  }
  const double mean = double(p.tokens) * double(p.top_k) / double(p.experts);
  for (int bm : {16, 32, 64})
    if (mean <= bm) return bm;
  return 128;
}

std::string step(const char* who, const char* what) { return std::string(who) + " (cuda): " + what; }

cudaError_t dispatch_gemm(DType dtype, const kernels::GroupedGemmParams& g, bool kn, const GemmPlan& plan, int slots,
                          cudaStream_t stream) {
  switch (dtype) {
    case DType::bf16: return kernels::launch_grouped_gemm<__nv_bfloat16>(g, kn, plan.tensor_cores, plan.bm, slots, stream);
    case DType::f16: return kernels::launch_grouped_gemm<__half>(g, kn, plan.tensor_cores, plan.bm, slots, stream);
    case DType::f32: return kernels::launch_grouped_gemm<float>(g, kn, plan.tensor_cores, plan.bm, slots, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

GemmPlan plan_gemms(const ExpertsCall& call, const ExpertsProblem& p, Strategy s) {
  GemmPlan plan;
  const bool half = p.dtype == DType::bf16 || p.dtype == DType::f16;
  plan.tensor_cores = half && p.hidden % 8 == 0 && p.intermediate % 8 == 0 &&
                      call.hidden_states.strides[0] % 8 == 0 && aligned16(call.hidden_states.data) &&
                      aligned16(call.gate_up_proj.data) && aligned16(call.down_proj.data);
  if (!plan.tensor_cores) plan.bm = kernels::kSimtBM;
  else if (s == Strategy::batched) plan.bm = kMinTileRows;  // one pair per tile
  else plan.bm = tc_tile_rows(p);
  return plan;
}

WorkspaceLayout workspace_layout(const ExpertsProblem& p, Strategy s) {
  const std::size_t N = std::size_t(p.tokens * p.top_k);
  const std::size_t E = std::size_t(p.experts);
  const std::size_t esize = p.dtype == DType::f32 ? 4 : 2;  // h and y are in the activation dtype
  WorkspaceLayout l;
  std::size_t at = 0;
  auto take = [&](std::size_t bytes) {
    const std::size_t here = at;
    at += align_up(bytes);
    return here;
  };
  if (s == Strategy::batched) {
    l.tile_slots = int(N);
    l.inv = take(N * 4);
    l.tiles = take(N * sizeof(kernels::Tile));
  } else {
    l.tile_slots = int((N + kMinTileRows - 1) / kMinTileRows + std::min(E, N));
    l.offsets = take((E + 1) * 4);
    l.perm = take(N * 4);
    l.inv = take(N * 4);
    l.tiles = take(std::size_t(l.tile_slots) * sizeof(kernels::Tile));
    l.num_tiles = take(4);
    if (const int chunks = kernels::routing_chunks(std::int64_t(N)); chunks > 1)
      l.chunk_counts = take(std::size_t(chunks) * E * 4);
  }
  l.h = take(N * std::size_t(p.intermediate) * esize);
  l.y = take(N * std::size_t(p.hidden) * esize);
  if (s == Strategy::grouped && N <= std::size_t(kernels::kGemvMaxPairs)) {
    l.counter_ints = kernels::gemv1k_counter_ints(p.tokens, p.top_k, p.experts, p.hidden);
    l.counters = take(l.counter_ints * 4);
  }
  l.bytes = at;
  return l;
}

void launch_grouped_routing(const ExpertsCall& call, const ExpertsProblem& p, int bm, Workspace ws,
                            const WorkspaceLayout& l, cudaStream_t stream, const char* who) {
  const int T = int(p.tokens), K = int(p.top_k), E = int(p.experts);
  const std::int64_t stride = call.top_k_index.strides[0];
  auto* offsets = at<int>(ws, l.offsets);
  auto* perm = at<int>(ws, l.perm);
  auto* inv = at<int>(ws, l.inv);
  auto* tiles = at<kernels::Tile>(ws, l.tiles);
  auto* num_tiles = at<int>(ws, l.num_tiles);
  auto* chunk_counts = l.chunk_counts ? at<int>(ws, l.chunk_counts) : nullptr;
  const cudaError_t err =
      p.index_dtype == DType::i32
          ? kernels::launch_grouped_routing(call.top_k_index.as<const std::int32_t>(), stride, T, K, E, bm, offsets,
                                            perm, inv, tiles, num_tiles, chunk_counts, stream)
          : kernels::launch_grouped_routing(call.top_k_index.as<const std::int64_t>(), stride, T, K, E, bm, offsets,
                                            perm, inv, tiles, num_tiles, chunk_counts, stream);
  check(err, step(who, "routing preparation").c_str());
}

void launch_batched_routing(const ExpertsCall& call, const ExpertsProblem& p, Workspace ws, const WorkspaceLayout& l,
                            cudaStream_t stream, const char* who) {
  const int T = int(p.tokens), K = int(p.top_k), E = int(p.experts);
  const std::int64_t stride = call.top_k_index.strides[0];
  auto* inv = at<int>(ws, l.inv);
  auto* tiles = at<kernels::Tile>(ws, l.tiles);
  const cudaError_t err =
      p.index_dtype == DType::i32
          ? kernels::launch_batched_routing(call.top_k_index.as<const std::int32_t>(), stride, T, K, E, inv, tiles, stream)
          : kernels::launch_batched_routing(call.top_k_index.as<const std::int64_t>(), stride, T, K, E, inv, tiles, stream);
  check(err, step(who, "routing preparation").c_str());
}

void launch_expert_gemms(const ExpertsCall& call, const ExpertsProblem& p, const GemmPlan& plan,
                         const kernels::Tile* tiles, const int* num_tiles, int slots, const int* a_rows, void* h,
                         void* y, cudaStream_t stream, const char* who) {
  const ExpertsOptions& o = p.options;
  const std::int64_t H = p.hidden, I = p.intermediate, R = p.gate_up_rows();
  const kernels::ActParams act = kernel_activation(o);

  kernels::GroupedGemmParams g1;
  g1.tiles = tiles;
  g1.num_tiles = num_tiles;
  g1.a = call.hidden_states.data;
  g1.lda = call.hidden_states.strides[0];
  g1.a_rows = a_rows;
  g1.a_div = int(p.top_k);
  g1.b = call.gate_up_proj.data;
  g1.b_expert_stride = R * H;
  g1.ldb = o.transposed ? R : H;
  g1.experts = int(p.experts);
  g1.mean_rows = int(p.tokens * p.top_k / p.experts);
  g1.n_weights = int(R);
  g1.kdim = int(H);
  g1.inter = int(I);
  g1.epilogue = !o.has_gate ? kernels::Epilogue::no_gate
                : o.gate_layout == GateLayout::interleaved ? kernels::Epilogue::gate_interleaved
                                                           : kernels::Epilogue::gate_concatenated;
  g1.bias = p.has_bias ? call.gate_up_proj_bias.data : nullptr;
  g1.out = h;
  g1.ldo = I;
  g1.act = act;
  g1.pair_order = a_rows == nullptr;  // batched_mm: one tile per pair, in pair order
  check(dispatch_gemm(p.dtype, g1, o.transposed, plan, slots, stream), step(who, "gate_up GEMM").c_str());

  kernels::GroupedGemmParams g2;
  g2.tiles = tiles;
  g2.num_tiles = num_tiles;
  g2.a = h;
  g2.lda = I;
  g2.a_rows = nullptr;
  g2.a_div = 1;
  g2.b = call.down_proj.data;
  g2.b_expert_stride = H * I;
  g2.ldb = o.transposed ? H : I;
  g2.experts = int(p.experts);
  g2.mean_rows = g1.mean_rows;
  g2.n_weights = int(H);
  g2.kdim = int(I);
  g2.inter = int(I);
  g2.epilogue = kernels::Epilogue::down;
  g2.bias = p.has_bias ? call.down_proj_bias.data : nullptr;
  g2.out = y;
  g2.ldo = H;
  g2.act = act;
  g2.pair_order = g1.pair_order;
  check(dispatch_gemm(p.dtype, g2, o.transposed, plan, slots, stream), step(who, "down GEMM").c_str());
}

namespace {

template <class T>
cudaError_t combine_as(const ExpertsCall& call, const ExpertsProblem& p, const int* inv, const T* y,
                       cudaStream_t stream) {
  const TensorView& w = call.top_k_weights;
  T* out = call.output.as<T>();
  const std::int64_t os = call.output.strides[0], ws = w.strides[0];
  const int T_ = int(p.tokens), K = int(p.top_k), H = int(p.hidden);
  if (p.routing_dtype == DType::f32)
    return kernels::launch_combine(y, H, inv, T_, K, w.as<const float>(), ws, out, os, stream);
  return kernels::launch_combine(y, H, inv, T_, K, w.as<const T>(), ws, out, os, stream);
}

}  // namespace

void launch_combine(const ExpertsCall& call, const ExpertsProblem& p, const int* inv, const void* y,
                    cudaStream_t stream, const char* who) {
  cudaError_t err = cudaErrorInvalidValue;
  switch (p.dtype) {
    case DType::bf16: err = combine_as(call, p, inv, static_cast<const __nv_bfloat16*>(y), stream); break;
    case DType::f16: err = combine_as(call, p, inv, static_cast<const __half*>(y), stream); break;
    case DType::f32: err = combine_as(call, p, inv, static_cast<const float*>(y), stream); break;
    default: break;
  }
  check(err, step(who, "combine").c_str());
}

kernels::ActParams kernel_activation(const ExpertsOptions& o) {
  kernels::Act a = kernels::Act::silu;
  switch (o.activation) {
    case Activation::silu: a = kernels::Act::silu; break;
    case Activation::gelu: a = kernels::Act::gelu; break;
    case Activation::gelu_tanh: a = kernels::Act::gelu_tanh; break;
    case Activation::relu: a = kernels::Act::relu; break;
    case Activation::clamped_swiglu: a = kernels::Act::clamped_swiglu; break;
  }
  return {a, o.swiglu_alpha, o.swiglu_limit};
}

}  // namespace moekit::cuda

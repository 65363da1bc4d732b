#include "cpu/expert_mlp.hpp"

#include <algorithm>

namespace moekit::cpu {
namespace {

kernels::Act to_kernel(Activation a) {
  switch (a) {
    case Activation::silu: return kernels::Act::silu;
    case Activation::gelu: return kernels::Act::gelu;
    case Activation::gelu_tanh: return kernels::Act::gelu_tanh;
    case Activation::relu: return kernels::Act::relu;
    case Activation::clamped_swiglu: return kernels::Act::clamped_swiglu;
  }
  return kernels::Act::silu;
}

const std::byte* bytes_of(const TensorView& t) { return static_cast<const std::byte*>(t.data); }

}  // namespace

CpuCall::CpuCall(const ExpertsCall& call, const ExpertsProblem& p, const RunContext& context)
    : kt(kernel_table()),
      wt(wtype(p.dtype)),
      T(p.tokens),
      H(p.hidden),
      I(p.intermediate),
      E(p.experts),
      K(p.top_k),
      N1(p.gate_up_rows()),
      es(dtype_size(p.dtype)),
      transposed(p.options.transposed),
      has_bias(p.has_bias),
      threads(effective_threads(context.threads)),
      x(bytes_of(call.hidden_states)),
      x_stride(call.hidden_states.strides[0]),
      out(static_cast<std::byte*>(call.output.data)),
      out_stride(call.output.strides[0]),
      gate_up(bytes_of(call.gate_up_proj)),
      down(bytes_of(call.down_proj)),
      gate_up_bias(p.has_bias ? bytes_of(call.gate_up_proj_bias) : nullptr),
      down_bias(p.has_bias ? bytes_of(call.down_proj_bias) : nullptr),
      ids(call.top_k_index.data),
      ids_stride(call.top_k_index.strides[0]),
      ids_i64(call.top_k_index.dtype == DType::i64),
      weights(call.top_k_weights.data),
      weights_stride(call.top_k_weights.strides[0]),
      weights_dtype(call.top_k_weights.dtype) {
  act.act = to_kernel(p.options.activation);
  act.has_gate = p.options.has_gate;
  act.interleaved = p.options.has_gate && p.options.gate_layout == GateLayout::interleaved;
  act.alpha = p.options.swiglu_alpha;
  act.limit = p.options.swiglu_limit;
}

float CpuCall::weight(std::int64_t t, std::int64_t k) const noexcept {
  const std::int64_t off = t * weights_stride + k;
  switch (weights_dtype) {
    case DType::bf16: return to_float(static_cast<const bf16*>(weights)[off]);
    case DType::f16: return to_float(static_cast<const f16*>(weights)[off]);
    default: return static_cast<const float*>(weights)[off];
  }
}

std::int64_t sort_pairs_by_expert(const CpuCall& c, std::int64_t* offsets, std::int64_t* order,
                                  std::int64_t* pair_row) {
  const std::int64_t P = c.pairs();
  std::fill(offsets, offsets + c.E + 1, 0);
  for (std::int64_t p = 0; p < P; ++p) {
    const std::int64_t e = c.expert(p / c.K, p % c.K);
    if (c.hits(e)) ++offsets[e + 1];
  }
  for (std::int64_t e = 1; e <= c.E; ++e) offsets[e] += offsets[e - 1];  // offsets[e+1] = end of e
  const std::int64_t rows = offsets[c.E];
  // Filling each expert's range from its end while walking the pairs backwards keeps pair order
  // within an expert (stable) and leaves offsets[e+1] at the start of e.
  for (std::int64_t p = P - 1; p >= 0; --p) {
    const std::int64_t e = c.expert(p / c.K, p % c.K);
    if (c.hits(e)) {
      const std::int64_t r = --offsets[e + 1];
      order[r] = p;
      if (pair_row) pair_row[p] = r;
    } else if (pair_row) {
      pair_row[p] = -1;
    }
  }
  for (std::int64_t e = 0; e < c.E; ++e) offsets[e] = offsets[e + 1];
  offsets[c.E] = rows;
  return rows;
}

std::int64_t list_routed_pairs(const CpuCall& c, std::int64_t* order, std::int64_t* pair_row) {
  std::int64_t r = 0;
  for (std::int64_t p = 0; p < c.pairs(); ++p) {
    if (c.routed(p)) {
      order[r] = p;
      pair_row[p] = r++;
    } else {
      pair_row[p] = -1;
    }
  }
  return r;
}

void gather_rows(const CpuCall& c, const std::int64_t* order, std::int64_t rows, float* X, std::int64_t ldx) {
  // GEMM1 reads these rows as its A: in the layout its kernel wants.
  const auto convert = c.transposed ? c.kt.to_f32[c.wt] : c.kt.to_nk_a[c.wt];
  parallel_for(rows, c.threads, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t r = b; r < e; ++r) {
      const std::int64_t t = order[r] / c.K;
      convert(c.x + std::size_t(t * c.x_stride) * c.es, X + r * ldx, c.H);
    }
  }, 16);
}

// nk items are 64 weight rows (64 x H bf16 = 512 KiB at H = 4096): enough items to balance a
// single token's 8 experts over the cores, big enough to stream. kn items are 256 columns, so a
// row of the transposed weights is read in 512-byte runs.
std::int64_t projection_block(const CpuCall& c, Projection) { return c.transposed ? 256 : 64; }

void project_block(const CpuCall& c, Projection which, const Segment& s, std::int64_t lda, std::int64_t ldc,
                   std::int64_t n0, std::int64_t n1) {
  const bool first = which == Projection::gate_up;
  const std::int64_t n = first ? c.N1 : c.H;  // output columns
  const std::int64_t k = first ? c.H : c.I;   // reduction length
  const std::byte* w = (first ? c.gate_up : c.down) + std::size_t(s.expert * n * k) * c.es;
  const std::byte* bias = first ? c.gate_up_bias : c.down_bias;
  if (bias) {
    const std::byte* b = bias + std::size_t(s.expert * n + n0) * c.es;
    for (std::int64_t r = 0; r < s.rows; ++r) c.kt.to_f32[c.wt](b, s.C + r * ldc + n0, n1 - n0);
  }
  const kernels::GemmFn gemm = c.transposed ? c.kt.gemm_kn[c.wt] : c.kt.gemm_nk[c.wt];
  gemm(s.A, lda, s.rows, w, c.transposed ? n : k, n0, n1, k, s.C, ldc, bias != nullptr);
}

void activate_rows(const CpuCall& c, float* G, std::int64_t ldg, std::int64_t rows) {
  const bool split = !c.transposed && c.kt.nk_split[c.wt];  // GEMM2 reads these rows as its A
  parallel_for(rows, c.threads, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t r = b; r < e; ++r) c.kt.activate(G + r * ldg, c.I, c.act, split);
  }, 16);
}

void combine_pairs(const CpuCall& c, const std::int64_t* pair_row, const float* Y, std::int64_t ldy) {
  parallel_for(c.T, c.threads, [&](std::int64_t b, std::int64_t e) {
    constexpr std::int64_t kChunk = 512;  // columns summed at a time in a stack buffer
    alignas(64) float acc[kChunk];
    for (std::int64_t t = b; t < e; ++t) {
      std::byte* out = c.out + std::size_t(t * c.out_stride) * c.es;
      for (std::int64_t h0 = 0; h0 < c.H; h0 += kChunk) {
        const std::int64_t len = std::min(kChunk, c.H - h0);
        std::fill(acc, acc + len, 0.0f);
        for (std::int64_t k = 0; k < c.K; ++k) {
          const std::int64_t r = pair_row[t * c.K + k];
          if (r >= 0) c.kt.axpy(c.weight(t, k), Y + r * ldy + h0, acc, len);
        }
        c.kt.from_f32[c.wt](acc, out + std::size_t(h0) * c.es, len);
      }
    }
  }, 4);
}

}  // namespace moekit::cpu

// moekit CPU: the stages the three CPU backends share (routing, gather, projections, activation,
// combine) and the workspace carving that keeps workspace_bytes() and run() in agreement.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu/isa.hpp"
#include "cpu/thread_pool.hpp"
#include "moekit/backend.hpp"

namespace moekit::cpu {

// Hands out 64-byte-aligned pieces of a workspace. Built on a null base it only counts, which is
// how workspace_bytes() is computed: the same carving code sizes and uses the workspace.
class Carver {
 public:
  explicit Carver(void* base = nullptr) : base_(static_cast<std::byte*>(base)) {}
  template <class T>
  T* take(std::int64_t count) {
    offset_ = (offset_ + 63) / 64 * 64;
    T* p = base_ ? reinterpret_cast<T*>(base_ + offset_) : nullptr;
    offset_ += std::size_t(count) * sizeof(T);
    return p;
  }
  std::size_t bytes() const noexcept { return offset_; }

 private:
  std::byte* base_;
  std::size_t offset_ = 0;
};

// Row stride of fp32 scratch rows: whole 64-byte lines, so every row starts aligned.
inline std::int64_t padded_row(std::int64_t n) { return (n + 15) / 16 * 16; }

enum class Projection { gate_up, down };

// The call as raw pointers and sizes, with the routing readers. Built once per run.
struct CpuCall {
  CpuCall(const ExpertsCall& call, const ExpertsProblem& problem, const RunContext& context);

  const kernels::KernelTable& kt;
  kernels::WType wt;
  kernels::ActParams act;
  std::int64_t T, H, I, E, K, N1;  // N1: rows of gate_up (2I with a gate, I without)
  std::size_t es;                  // bytes per activation / weight element
  bool transposed, has_bias;
  int threads;

  const std::byte* x;
  std::int64_t x_stride;
  std::byte* out;
  std::int64_t out_stride;
  const std::byte* gate_up;
  const std::byte* down;
  const std::byte* gate_up_bias;  // null without biases
  const std::byte* down_bias;

  const void* ids;
  std::int64_t ids_stride;
  bool ids_i64;
  const void* weights;
  std::int64_t weights_stride;
  DType weights_dtype;

  std::int64_t pairs() const noexcept { return T * K; }
  std::int64_t expert(std::int64_t t, std::int64_t k) const noexcept {
    const std::int64_t off = t * ids_stride + k;
    return ids_i64 ? static_cast<const std::int64_t*>(ids)[off] : static_cast<const std::int32_t*>(ids)[off];
  }
  float weight(std::int64_t t, std::int64_t k) const noexcept;
  // Whether an id names an expert here. Unsigned, so that an id validate() would have refused
  // (negative) can never index out of bounds when run() is called directly.
  bool hits(std::int64_t id) const noexcept { return std::uint64_t(id) < std::uint64_t(E); }
  bool routed(std::int64_t pair) const noexcept { return hits(expert(pair / K, pair % K)); }
};

// The (token, k) pairs that reach an expert (id < E), as rows of the scratch buffers:
// order[r] = pair id of row r; pair_row[p] = row of pair p, or -1 for a sentinel.
// Sorted stably by expert (counting sort); offsets[e]..offsets[e+1] are expert e's rows. Returns R.
std::int64_t sort_pairs_by_expert(const CpuCall& c, std::int64_t* offsets, std::int64_t* order,
                                  std::int64_t* pair_row);
// In pair order (no sort). Returns R.
std::int64_t list_routed_pairs(const CpuCall& c, std::int64_t* order, std::int64_t* pair_row);

// X[r] = float(x[token of order[r]]) for r < rows.
void gather_rows(const CpuCall& c, const std::int64_t* order, std::int64_t rows, float* X, std::int64_t ldx);

// Rows of one expert that one projection reads (A) and writes (C).
struct Segment {
  std::int64_t expert;
  std::int64_t rows;
  const float* A;
  float* C;
};

// Columns of C per work item: independent of the thread count, so the partition is fixed.
std::int64_t projection_block(const CpuCall& c, Projection which);
// C[0:rows, n0:n1] = A @ W(expert)[n0:n1]^T (+ bias), for one segment.
void project_block(const CpuCall& c, Projection which, const Segment& s, std::int64_t lda, std::int64_t ldc,
                   std::int64_t n0, std::int64_t n1);

// One grouped product over `segments` segments: work items are (segment, block of output
// columns), all handed to the pool at once. segment(i) -> Segment.
template <class SegmentFn>
void project(const CpuCall& c, Projection which, std::int64_t segments, SegmentFn&& segment, std::int64_t lda,
             std::int64_t ldc) {
  const std::int64_t n = which == Projection::gate_up ? c.N1 : c.H;
  const std::int64_t nb = projection_block(c, which);
  const std::int64_t blocks = (n + nb - 1) / nb;
  parallel_for(segments * blocks, c.threads, [&](std::int64_t item) {
    const Segment s = segment(item / blocks);
    if (s.rows == 0) return;
    const std::int64_t n0 = item % blocks * nb;
    project_block(c, which, s, lda, ldc, n0, n0 + nb < n ? n0 + nb : n);
  });
}

// In place on each row of G: G[r, 0:I] = gate(G[r, 0:N1]).
void activate_rows(const CpuCall& c, float* G, std::int64_t ldg, std::int64_t rows);

// out[t] = sum over k in order of w[t,k] * Y[pair_row[t*K+k]] (sentinels skipped), cast once.
void combine_pairs(const CpuCall& c, const std::int64_t* pair_row, const float* Y, std::int64_t ldy);

}  // namespace moekit::cpu

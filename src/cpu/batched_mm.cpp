// batched_mm on the CPU: one product per (token, k) pair, each reading its expert's weights in
// place (never copied or repacked: an expert hit by n pairs is streamed n times, which is this
// strategy's cost), then the per-token combine in k order.
//
// Work partition: items are (pair, block of output columns) for each projection, all pairs at
// once; each item owns its outputs, so results do not depend on the thread count.
//
// Workspace (P = T*K pairs; activations and indices only, rows padded to 16 floats):
//   order (P) + pair_row (P)   int64
//   X, later Y: P x pad(H) fp32   (each pair's input row; GEMM2 overwrites it)
//   G:          P x pad(N1) fp32  (GEMM1 output; the activation is written in place)
#include "cpu/backends.hpp"
#include "cpu/cpu_backend.hpp"
#include "cpu/expert_mlp.hpp"

namespace moekit::cpu {
namespace {

struct BatchedWorkspace {
  std::int64_t *order, *pair_row;
  float *XY, *G;
  std::int64_t ldh, ldg;
  std::size_t bytes;

  BatchedWorkspace(const ExpertsProblem& p, void* base) {
    const std::int64_t P = p.tokens * p.top_k;
    Carver c(base);
    order = c.take<std::int64_t>(P);
    pair_row = c.take<std::int64_t>(P);
    ldh = padded_row(p.hidden);
    ldg = padded_row(p.gate_up_rows());
    XY = c.take<float>(P * ldh);
    G = c.take<float>(P * ldg);
    bytes = c.bytes();
  }
};

class BatchedMm final : public CpuBackend {
 public:
  std::string_view name() const override { return "batched_mm"; }

  std::size_t workspace_bytes(const ExpertsProblem& p) const override { return BatchedWorkspace(p, nullptr).bytes; }

  void run(const ExpertsCall& call, const ExpertsProblem& p, Workspace workspace,
           const RunContext& context) const override {
    if (p.tokens == 0) return;
    check_workspace(workspace, workspace_bytes(p));
    const CpuCall c(call, p, context);
    const BatchedWorkspace w(p, workspace.data);

    const std::int64_t rows = list_routed_pairs(c, w.order, w.pair_row);
    if (rows > 0) {
      gather_rows(c, w.order, rows, w.XY, w.ldh);
      // Segment r is the single row of pair order[r]: one M = 1 product per pair.
      auto segment = [&](const float* A, std::int64_t lda, float* C, std::int64_t ldc) {
        return [=, &c, &w](std::int64_t r) {
          const std::int64_t pair = w.order[r];
          return Segment{c.expert(pair / c.K, pair % c.K), 1, A + r * lda, C + r * ldc};
        };
      };
      project(c, Projection::gate_up, rows, segment(w.XY, w.ldh, w.G, w.ldg), w.ldh, w.ldg);
      activate_rows(c, w.G, w.ldg, rows);
      project(c, Projection::down, rows, segment(w.G, w.ldg, w.XY, w.ldh), w.ldg, w.ldh);
    }
    combine_pairs(c, w.pair_row, w.XY, w.ldh);
  }
};

}  // namespace

std::unique_ptr<Backend> make_batched_mm_backend() { return std::make_unique<BatchedMm>(); }

}  // namespace moekit::cpu

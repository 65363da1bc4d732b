// grouped_mm on the CPU: sort the (token, k) pairs by expert, gather their rows, one grouped GEMM
// per projection over all experts at once, activation in between, weighted combine in (t, k) order.
//
// Work partition: a projection's work items are (expert segment, block of output columns), all
// handed to the pool together, so every thread streams weights at once whether one expert or all
// of them are hit. Each item owns its outputs and sums in a fixed order: no thread count changes
// any result.
//
// Workspace (P = T*K pairs, rows padded to 16 floats):
//   offsets (E+1) + hit experts (E) + order (P) + pair_row (P)   int64
//   X, later Y: P x pad(H) fp32   (gathered rows; GEMM2 overwrites them once GEMM1 is done)
//   G:          P x pad(N1) fp32  (GEMM1 output; the activation is written in place)
#include "cpu/backends.hpp"
#include "cpu/cpu_backend.hpp"
#include "cpu/expert_mlp.hpp"

namespace moekit::cpu {
namespace {

struct GroupedWorkspace {
  std::int64_t *offsets, *hit, *order, *pair_row;
  float *XY, *G;
  std::int64_t ldh, ldg;
  std::size_t bytes;

  GroupedWorkspace(const ExpertsProblem& p, void* base) {
    const std::int64_t P = p.tokens * p.top_k;
    Carver c(base);
    offsets = c.take<std::int64_t>(p.experts + 1);
    hit = c.take<std::int64_t>(p.experts);
    order = c.take<std::int64_t>(P);
    pair_row = c.take<std::int64_t>(P);
    ldh = padded_row(p.hidden);
    ldg = padded_row(p.gate_up_rows());
    XY = c.take<float>(P * ldh);
    G = c.take<float>(P * ldg);
    bytes = c.bytes();
  }
};

class GroupedMm final : public CpuBackend {
 public:
  std::string_view name() const override { return "grouped_mm"; }

  std::size_t workspace_bytes(const ExpertsProblem& p) const override { return GroupedWorkspace(p, nullptr).bytes; }

  void run(const ExpertsCall& call, const ExpertsProblem& p, Workspace workspace,
           const RunContext& context) const override {
    if (p.tokens == 0) return;
    check_workspace(workspace, workspace_bytes(p));
    const CpuCall c(call, p, context);
    const GroupedWorkspace w(p, workspace.data);

    const std::int64_t rows = sort_pairs_by_expert(c, w.offsets, w.order, w.pair_row);
    std::int64_t hits = 0;
    for (std::int64_t e = 0; e < c.E; ++e)
      if (w.offsets[e + 1] > w.offsets[e]) w.hit[hits++] = e;

    if (rows > 0) {
      gather_rows(c, w.order, rows, w.XY, w.ldh);
      auto segment = [&](const float* A, std::int64_t lda, float* C, std::int64_t ldc) {
        return [=, &w](std::int64_t i) {
          const std::int64_t e = w.hit[i], r0 = w.offsets[e];
          return Segment{e, w.offsets[e + 1] - r0, A + r0 * lda, C + r0 * ldc};
        };
      };
      project(c, Projection::gate_up, hits, segment(w.XY, w.ldh, w.G, w.ldg), w.ldh, w.ldg);
      activate_rows(c, w.G, w.ldg, rows);
      project(c, Projection::down, hits, segment(w.G, w.ldg, w.XY, w.ldh), w.ldg, w.ldh);
    }
    combine_pairs(c, w.pair_row, w.XY, w.ldh);
  }
};

}  // namespace

std::unique_ptr<Backend> make_grouped_mm_backend() { return std::make_unique<GroupedMm>(); }

}  // namespace moekit::cpu

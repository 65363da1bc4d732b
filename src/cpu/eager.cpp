// eager on the CPU: scan the routing on the host, then for each expert that was hit, in ascending
// order: gather its rows (at most kChunkRows at a time, so the workspace does not depend on the
// routing), GEMM1 + activation + GEMM2 (+ biases), and a weighted scatter-add into an fp32 [T, H]
// accumulator; one cast at the end. A token's contributions are added in expert order, a fixed
// order, so results are deterministic.
//
// Threads work inside each step (columns of the GEMMs, rows of the gather and activation, column
// blocks of the scatter), never across experts.
//
// Workspace (P = T*K pairs, C = min(kChunkRows, P), rows padded to 16 floats):
//   offsets (E+1) + order (P)   int64
//   accumulator: T x pad(H) fp32
//   X, later Y:  C x pad(H) fp32;  G: C x pad(N1) fp32
#include <algorithm>
#include <cstring>

#include "cpu/backends.hpp"
#include "cpu/cpu_backend.hpp"
#include "cpu/expert_mlp.hpp"

namespace moekit::cpu {
namespace {

constexpr std::int64_t kChunkRows = 256;
constexpr std::int64_t kScatterColumns = 256;  // columns per scatter work item

struct EagerWorkspace {
  std::int64_t *offsets, *order;
  float *acc, *XY, *G;
  std::int64_t chunk, ldh, ldg;
  std::size_t bytes;

  EagerWorkspace(const ExpertsProblem& p, void* base) {
    const std::int64_t P = p.tokens * p.top_k;
    chunk = std::min(kChunkRows, P);
    ldh = padded_row(p.hidden);
    ldg = padded_row(p.gate_up_rows());
    Carver c(base);
    offsets = c.take<std::int64_t>(p.experts + 1);
    order = c.take<std::int64_t>(P);
    acc = c.take<float>(p.tokens * ldh);
    XY = c.take<float>(chunk * ldh);
    G = c.take<float>(chunk * ldg);
    bytes = c.bytes();
  }
};

// acc[token of row r] += w * Y[r] for the rows of one chunk, in row order; threads split the
// columns, so two rows of the same token never race.
void scatter_add(const CpuCall& c, const std::int64_t* order, std::int64_t rows, const float* Y, std::int64_t ldy,
                 float* acc, std::int64_t ldacc) {
  const std::int64_t blocks = (c.H + kScatterColumns - 1) / kScatterColumns;
  parallel_for(blocks, c.threads, [&](std::int64_t b) {
    const std::int64_t h0 = b * kScatterColumns, len = std::min(kScatterColumns, c.H - h0);
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t t = order[r] / c.K, k = order[r] % c.K;
      c.kt.axpy(c.weight(t, k), Y + r * ldy + h0, acc + t * ldacc + h0, len);
    }
  });
}

class Eager final : public CpuBackend {
 public:
  std::string_view name() const override { return "eager"; }

  std::size_t workspace_bytes(const ExpertsProblem& p) const override { return EagerWorkspace(p, nullptr).bytes; }

  void run(const ExpertsCall& call, const ExpertsProblem& p, Workspace workspace,
           const RunContext& context) const override {
    if (p.tokens == 0) return;
    check_workspace(workspace, workspace_bytes(p));
    const CpuCall c(call, p, context);
    const EagerWorkspace w(p, workspace.data);

    sort_pairs_by_expert(c, w.offsets, w.order, nullptr);
    parallel_for(c.T, c.threads, [&](std::int64_t t) {
      std::memset(w.acc + t * w.ldh, 0, std::size_t(c.H) * sizeof(float));
    });

    for (std::int64_t e = 0; e < c.E; ++e) {
      for (std::int64_t r0 = w.offsets[e]; r0 < w.offsets[e + 1]; r0 += w.chunk) {
        const std::int64_t rows = std::min(w.chunk, w.offsets[e + 1] - r0);
        gather_rows(c, w.order + r0, rows, w.XY, w.ldh);
        const Segment first{e, rows, w.XY, w.G}, second{e, rows, w.G, w.XY};
        project(c, Projection::gate_up, 1, [&](std::int64_t) { return first; }, w.ldh, w.ldg);
        activate_rows(c, w.G, w.ldg, rows);
        project(c, Projection::down, 1, [&](std::int64_t) { return second; }, w.ldg, w.ldh);
        scatter_add(c, w.order + r0, rows, w.XY, w.ldh, w.acc, w.ldh);
      }
    }

    parallel_for(c.T, c.threads, [&](std::int64_t t) {
      c.kt.from_f32[c.wt](w.acc + t * w.ldh, c.out + std::size_t(t * c.out_stride) * c.es, c.H);
    });
  }
};

}  // namespace

std::unique_ptr<Backend> make_eager_backend() { return std::make_unique<Eager>(); }

}  // namespace moekit::cpu

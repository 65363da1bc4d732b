// moekit CUDA: the `fused` backend's plan, shared with `auto` (which picks a plan per shape).
//
// Two paths:
//   gemv     decode-sized batches: each hit expert's weights streamed once from HBM over all SMs
//            (kernels/fused_gemv.cuh), gate fused into GEMV1, weighted combine in k order. Needs a
//            16-bit dtype, [N, K] weights, H and I multiples of 8, 16-byte aligned rows and
//            T*K <= 1024. Three launches (GEMV1, GEMV2, combine), or one persistent launch doing
//            all three ("gemv1k": GEMV2 units wait on per-expert counters of finished GEMV1 units).
//   grouped  everything else: device routing, the grouped tensor-core GEMMs (wgmma on sm_90a for
//            128-row tiles) and the combine of the shared pipeline (pipeline.hpp), with the tile
//            height taken from the plan. Not yet a fused kernel of its own (docs/perf-notes.md).
// Included by .cu files only.
#pragma once

#include <memory>
#include <string>

#include "moekit/backend.hpp"

namespace moekit::cuda {

struct FusedPlan {
  enum class Path { gemv, grouped } path = Path::grouped;
  bool one_kernel = false;  // gemv: GEMV1, GEMV2 and the combine in one launch ("gemv1k")
  int nt = 1;  // gemv: tokens per pass over the rows, in groups of 8 (1, 2 or 4)
  int rg = 1;  // gemv: 16-row groups per CTA (1 or 2)
  int bm = 0;  // grouped: tile rows (16, 32, 64, 128); 0 = the pipeline's heuristic
  std::string describe() const;  // "gemv nt=1 rg=1", "gemv1k nt=1 rg=1", "grouped bm=64", "grouped bm=auto"
};

// Parses describe()'s form; throws Error(invalid_argument) on anything else.
FusedPlan parse_fused_plan(const std::string& text);

// Whether the gemv path can run this call (sizes, dtype, layout and pointer alignment); the
// reason when not.
Support fused_gemv_fits(const ExpertsCall& call, const ExpertsProblem& p);

// The plan `fused` runs without a table: gemv while the call streams weights (few rows per hit
// expert; tokens per pass from gemv_tokens_per_pass), grouped beyond.
FusedPlan default_fused_plan(const ExpertsCall& call, const ExpertsProblem& p);
// The gemv plans' nt for T tokens: one pass for every expert up to T = 8 x nt, whatever the routing.
int gemv_tokens_per_pass(std::int64_t tokens);

// The registered backend: the default plan per call.
std::unique_ptr<Backend> make_fused_backend();
// Runs `fused` with this plan (validated call; workspace as workspace_bytes says). Throws
// Error(unsupported) when the plan cannot run this call.
void run_fused(const ExpertsCall& call, const ExpertsProblem& p, const FusedPlan& plan, Workspace ws,
               const RunContext& ctx);

}  // namespace moekit::cuda

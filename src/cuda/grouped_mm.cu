// grouped_mm on CUDA: device routing (counts, offsets, stable permutation, tile list), one grouped
// GEMM per projection that reads the tiles from device memory, and the weighted combine. No host
// sync and no allocation: capturable in a CUDA graph.
#include <algorithm>

#include "cuda/backend_base.hpp"
#include "cuda/backends.hpp"

namespace moekit::cuda {
namespace {

class GroupedMm final : public CudaBackend {
 public:
  std::string_view name() const override { return "grouped_mm"; }

  void run(const ExpertsCall& call, const ExpertsProblem& p, Workspace ws, const RunContext& ctx) const override {
    if (p.tokens == 0) return;
    const WorkspaceLayout l = checked_layout(p, ws);
    DeviceGuard guard(p.device.index);
    auto stream = static_cast<cudaStream_t>(ctx.stream);
    const GemmPlan plan = plan_gemms(call, p, Strategy::grouped);
    // Tiles per launch for this bm: at most ceil(N/bm) + one partial tile per hit expert.
    const std::int64_t N = p.tokens * p.top_k;
    const int slots = int((N + plan.bm - 1) / plan.bm + std::min<std::int64_t>(p.experts, N));
    launch_grouped_routing(call, p, plan.bm, ws, l, stream, "grouped_mm");
    launch_expert_gemms(call, p, plan, at<kernels::Tile>(ws, l.tiles), at<int>(ws, l.num_tiles), slots,
                        at<int>(ws, l.perm), at<void>(ws, l.h), at<void>(ws, l.y), stream, "grouped_mm");
    launch_combine(call, p, at<int>(ws, l.inv), at<void>(ws, l.y), stream, "grouped_mm");
  }

 protected:
  Strategy strategy() const override { return Strategy::grouped; }
};

}  // namespace

std::unique_ptr<Backend> make_grouped_mm_backend() { return std::make_unique<GroupedMm>(); }

}  // namespace moekit::cuda

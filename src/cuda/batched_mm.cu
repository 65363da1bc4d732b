// batched_mm on CUDA: one product per (token, k) pair, all pairs in one launch per projection.
// Each pair is a one-row tile that reads its expert's weights where they are (no [T*K, 2I, H] copy
// as torch.bmm needs), so the workspace holds activations only. No host sync: capturable.
#include "cuda/backend_base.hpp"
#include "cuda/backends.hpp"

namespace moekit::cuda {
namespace {

class BatchedMm final : public CudaBackend {
 public:
  std::string_view name() const override { return "batched_mm"; }

  void run(const ExpertsCall& call, const ExpertsProblem& p, Workspace ws, const RunContext& ctx) const override {
    if (p.tokens == 0) return;
    const WorkspaceLayout l = checked_layout(p, ws);
    DeviceGuard guard(p.device.index);
    auto stream = static_cast<cudaStream_t>(ctx.stream);
    const GemmPlan plan = plan_gemms(call, p, Strategy::batched);
    launch_batched_routing(call, p, ws, l, stream, "batched_mm");
    launch_expert_gemms(call, p, plan, at<kernels::Tile>(ws, l.tiles), nullptr, l.tile_slots, nullptr,
                        at<void>(ws, l.h), at<void>(ws, l.y), stream, "batched_mm");
    launch_combine(call, p, at<int>(ws, l.inv), at<void>(ws, l.y), stream, "batched_mm");
  }

 protected:
  Strategy strategy() const override { return Strategy::batched; }
};

}  // namespace

std::unique_ptr<Backend> make_batched_mm_backend() { return std::make_unique<BatchedMm>(); }

}  // namespace moekit::cuda

// eager on CUDA: the routing comes to the host (one device-to-host copy and one stream sync per
// call, as transformers' eager loop does), the host groups the pairs by expert, and each hit
// expert gets its own two GEMM launches; then the weighted combine. Because of the sync it cannot
// run inside CUDA graph capture, and says so instead of breaking the capture.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/backend_base.hpp"
#include "cuda/backends.hpp"

namespace moekit::cuda {
namespace {

class Eager final : public CudaBackend {
 public:
  std::string_view name() const override { return "eager"; }

  void run(const ExpertsCall& call, const ExpertsProblem& p, Workspace ws, const RunContext& ctx) const override {
    if (p.tokens == 0) return;
    const WorkspaceLayout l = checked_layout(p, ws);
    DeviceGuard guard(p.device.index);
    auto stream = static_cast<cudaStream_t>(ctx.stream);
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    check(cudaStreamIsCapturing(stream, &capture), "eager (cuda): cudaStreamIsCapturing");
    if (capture != cudaStreamCaptureStatusNone)
      throw Error(Errc::unsupported,
                  "eager (cuda) copies the routing to the host and synchronises, so it cannot be captured in a CUDA "
                  "graph; use grouped_mm or batched_mm");

    const std::int64_t T = p.tokens, K = p.top_k, E = p.experts, N = T * K;
    const std::size_t isz = dtype_size(p.index_dtype);
    std::vector<unsigned char> raw(std::size_t(N) * isz);
    check(cudaMemcpy2DAsync(raw.data(), std::size_t(K) * isz, call.top_k_index.data,
                            std::size_t(call.top_k_index.strides[0]) * isz, std::size_t(K) * isz, std::size_t(T),
                            cudaMemcpyDeviceToHost, stream),
          "eager (cuda): copying top_k_index to the host");
    check(cudaStreamSynchronize(stream), "eager (cuda): waiting for the routing");

    // Group the pairs by expert on the host, in pair order within an expert.
    std::vector<int> expert(static_cast<std::size_t>(N));
    std::vector<int> count(std::size_t(E), 0);
    for (std::int64_t i = 0; i < N; ++i) {
      std::int64_t id;
      if (p.index_dtype == DType::i32) {
        std::int32_t v;
        std::memcpy(&v, raw.data() + i * 4, 4);
        id = v;
      } else {
        std::memcpy(&id, raw.data() + i * 8, 8);
      }
      if (id < 0)
        throw Error(Errc::invalid_argument, "top_k_index[" + std::to_string(i / K) + ", " + std::to_string(i % K) +
                                                "] = " + std::to_string(id) +
                                                " is negative (ids >= E are sentinels, negative ids are errors)");
      expert[std::size_t(i)] = id < E ? int(id) : int(E);
      if (id < E) ++count[std::size_t(id)];
    }
    const GemmPlan plan = plan_gemms(call, p, Strategy::eager);
    // A host image of the index sections [offsets, h) of the workspace, uploaded in one copy.
    std::vector<unsigned char> image(l.h - l.offsets, 0);
    auto host = [&](std::size_t offset) { return image.data() + (offset - l.offsets); };
    auto* offsets = reinterpret_cast<int*>(host(l.offsets));
    auto* perm = reinterpret_cast<int*>(host(l.perm));
    auto* inv = reinterpret_cast<int*>(host(l.inv));
    auto* tiles = reinterpret_cast<kernels::Tile*>(host(l.tiles));
    std::vector<int> tile_begin(std::size_t(E) + 1, 0);
    std::vector<int> cursor(static_cast<std::size_t>(E), 0);
    int row = 0, ntiles = 0;
    for (std::int64_t e = 0; e < E; ++e) {
      offsets[e] = row;
      cursor[std::size_t(e)] = row;
      tile_begin[std::size_t(e)] = ntiles;
      const int nt = (count[std::size_t(e)] + plan.bm - 1) / plan.bm;
      for (int j = 0; j < nt; ++j)
        tiles[ntiles++] = kernels::Tile{int(e), row + j * plan.bm, std::min(plan.bm, count[std::size_t(e)] - j * plan.bm),
                                        kernels::raster_group_word(j, nt)};
      row += count[std::size_t(e)];
    }
    offsets[E] = row;
    tile_begin[std::size_t(E)] = ntiles;
    *reinterpret_cast<int*>(host(l.num_tiles)) = ntiles;
    for (std::int64_t i = 0; i < N; ++i) {
      const int e = expert[std::size_t(i)];
      inv[i] = e < E ? cursor[std::size_t(e)]++ : -1;
      if (inv[i] >= 0) perm[inv[i]] = int(i);
    }
    // Pageable memory: the copy has staged `image` when cudaMemcpyAsync returns.
    check(cudaMemcpyAsync(at<void>(ws, l.offsets), image.data(), image.size(), cudaMemcpyHostToDevice, stream),
          "eager (cuda): uploading the grouping");

    const auto* dev_tiles = at<kernels::Tile>(ws, l.tiles);
    for (std::int64_t e = 0; e < E; ++e) {
      const int first = tile_begin[std::size_t(e)], n = tile_begin[std::size_t(e) + 1] - first;
      if (n == 0) continue;
      launch_expert_gemms(call, p, plan, dev_tiles + first, nullptr, n, at<int>(ws, l.perm), at<void>(ws, l.h),
                          at<void>(ws, l.y), stream, "eager");
    }
    launch_combine(call, p, at<int>(ws, l.inv), at<void>(ws, l.y), stream, "eager");
  }

 protected:
  Strategy strategy() const override { return Strategy::eager; }
};

}  // namespace

std::unique_ptr<Backend> make_eager_backend() { return std::make_unique<Eager>(); }

}  // namespace moekit::cuda

#include "cuda/workspace_pool.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/common.hpp"

namespace moekit::cuda {
namespace {

struct Block {
  void* data = nullptr;
  std::size_t bytes = 0;
  cudaEvent_t done = nullptr;  // recorded on `last` when the block was released
  cudaStream_t last = nullptr;
  bool busy = false;
};

struct DevicePool {
  std::mutex mutex;
  std::vector<Block> blocks;  // never freed: the pool lives as long as the process
};

DevicePool& pool_of(int device) {
  static std::mutex registry_mutex;
  static std::map<int, std::unique_ptr<DevicePool>> pools;
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto& p = pools[device];
  if (!p) p = std::make_unique<DevicePool>();
  return *p;
}

class Lease final : public PooledWorkspace {
 public:
  Lease(DevicePool& pool, std::size_t index, Workspace ws, int device, cudaStream_t stream)
      : pool_(pool), index_(index), ws_(ws), device_(device), stream_(stream) {}
  ~Lease() override {
    std::lock_guard<std::mutex> lock(pool_.mutex);
    Block& b = pool_.blocks[index_];
    int previous = -1;
    cudaGetDevice(&previous);
    if (previous != device_) cudaSetDevice(device_);
    // If recording fails the block must never be handed out again on another stream.
    if (cudaEventRecord(b.done, stream_) == cudaSuccess) {
      b.last = stream_;
      b.busy = false;
    }
    if (previous != device_ && previous >= 0) cudaSetDevice(previous);
  }
  Workspace get() const override { return ws_; }

 private:
  DevicePool& pool_;
  std::size_t index_;
  Workspace ws_;  // a copy: the pool's vector may grow while the lease is held
  int device_;
  cudaStream_t stream_;
};

constexpr std::size_t kGranule = std::size_t(2) << 20;  // sizes rounded up so that near sizes share blocks

}  // namespace

std::unique_ptr<PooledWorkspace> acquire_workspace(int device, std::size_t bytes, void* stream_ptr) {
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  DeviceGuard guard(device);
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(stream, &capture), "workspace pool: cudaStreamIsCapturing");
  if (capture != cudaStreamCaptureStatusNone)
    throw Error(Errc::unsupported,
                "pass a Workspace to experts() when capturing a CUDA graph: pooled scratch is reused by later calls "
                "while the graph still refers to it");
  DevicePool& pool = pool_of(device);
  std::lock_guard<std::mutex> lock(pool.mutex);
  std::size_t best = pool.blocks.size();
  for (std::size_t i = 0; i < pool.blocks.size(); ++i) {
    Block& b = pool.blocks[i];
    if (b.busy || b.bytes < bytes) continue;
    const bool ready = b.last == stream || cudaEventQuery(b.done) == cudaSuccess;
    if (!ready) continue;
    if (best == pool.blocks.size() || b.bytes < pool.blocks[best].bytes) best = i;
  }
  if (best == pool.blocks.size()) {
    Block b;
    b.bytes = (std::max<std::size_t>(bytes, 1) + kGranule - 1) / kGranule * kGranule;
    const cudaError_t err = cudaMalloc(&b.data, b.bytes);
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw Error(Errc::out_of_memory, "cannot allocate a " + std::to_string(b.bytes) + "-byte workspace on cuda:" +
                                           std::to_string(device) + ": " + cudaGetErrorString(err));
    }
    check(cudaEventCreateWithFlags(&b.done, cudaEventDisableTiming), "workspace pool: cudaEventCreate");
    pool.blocks.push_back(b);
  }
  Block& b = pool.blocks[best];
  b.busy = true;
  return std::make_unique<Lease>(pool, best, Workspace{b.data, b.bytes}, device, stream);
}

}  // namespace moekit::cuda

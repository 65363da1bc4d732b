// moekit CUDA: cached device scratch for experts() when the caller passes no workspace.
// Plain C++ (no CUDA headers), so src/core can use it.
//
// One pool per device, guarded by a mutex: any number of threads and streams may take blocks at
// once. A block is handed out again only when the work last enqueued on it has finished (an event
// recorded at release) or when the new call runs on the same stream (stream order protects it), so
// after the first calls of each size no cudaMalloc happens. Refused while the stream is being
// captured: a graph replays long after the call, when the block may belong to someone else, so a
// captured call must own its workspace.
#pragma once

#include <cstddef>
#include <memory>

#include "moekit/backend.hpp"

namespace moekit::cuda {

class PooledWorkspace {
 public:
  virtual ~PooledWorkspace() = default;  // releases the block after the work enqueued on its stream
  virtual Workspace get() const = 0;
};

std::unique_ptr<PooledWorkspace> acquire_workspace(int device, std::size_t bytes, void* stream);

}  // namespace moekit::cuda

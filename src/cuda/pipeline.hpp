// moekit CUDA: the steps the three backends share (routing preparation, the two grouped GEMMs,
// the weighted combine) and the workspace layout. Included by .cu files only.
//
// Workspace (every section 256-byte aligned), N = T*K pairs, S = tile slots:
//   grouped / eager: offsets (E+1) i32 | perm N i32 | inv N i32 | tiles S x 16 B | num_tiles i32
//                    | h N x I | y N x H (both in the activation dtype)   S = ceil(N/16) + min(E, N)
//                    | grouped with N <= 1024 only: counters (min(E, N) + T * ceil(H/16)) i32,
//                      the one-kernel gemv path's (kernels/fused_gemv.cuh; cleared by each call)
//   batched:         inv N i32 | tiles N x 16 B | h N x I | y N x H
// so batched_mm's scratch is activations (and their index) only, never a weight copy.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "cuda/kernels/activation.cuh"
#include "cuda/kernels/types.cuh"
#include "moekit/backend.hpp"

namespace moekit::cuda {

enum class Strategy { eager, batched, grouped };

// The kernels' activation code and parameters for the call's options.
kernels::ActParams kernel_activation(const ExpertsOptions& o);

struct GemmPlan {
  bool tensor_cores = false;  // bf16/f16 with 16-byte-aligned rows; else the fp32 FMA path
  int bm = 32;                // rows per tile
};
// Depends only on sizes, dtypes and pointer alignment, never on the routing: no sync.
GemmPlan plan_gemms(const ExpertsCall& call, const ExpertsProblem& p, Strategy s);

struct WorkspaceLayout {
  std::size_t offsets = 0, perm = 0, inv = 0, tiles = 0, num_tiles = 0, h = 0, y = 0, counters = 0, bytes = 0;
  std::size_t chunk_counts = 0;  // the chunked routing's scratch (grouped, more than one chunk)
  std::size_t counter_ints = 0;  // 0: no counters section
  int tile_slots = 0;
};
WorkspaceLayout workspace_layout(const ExpertsProblem& p, Strategy s);

template <class T>
T* at(Workspace ws, std::size_t offset) {
  return reinterpret_cast<T*>(static_cast<unsigned char*>(ws.data) + offset);
}

// Device routing: grouped writes offsets, perm, inv, tiles, num_tiles; batched writes inv, tiles.
void launch_grouped_routing(const ExpertsCall& call, const ExpertsProblem& p, int bm, Workspace ws,
                            const WorkspaceLayout& l, cudaStream_t stream, const char* who);
void launch_batched_routing(const ExpertsCall& call, const ExpertsProblem& p, Workspace ws, const WorkspaceLayout& l,
                            cudaStream_t stream, const char* who);

// GEMM1 (gate_up + bias + activation -> h) then GEMM2 (down + bias -> y) over `slots` tiles.
// a_rows maps a tile row to its pair (null: the row is the pair).
void launch_expert_gemms(const ExpertsCall& call, const ExpertsProblem& p, const GemmPlan& plan,
                         const kernels::Tile* tiles, const int* num_tiles, int slots, const int* a_rows, void* h,
                         void* y, cudaStream_t stream, const char* who);

// out[t] = sum_k w[t,k] * y[inv[t*K+k]] in k order (inv < 0: nothing).
void launch_combine(const ExpertsCall& call, const ExpertsProblem& p, const int* inv, const void* y,
                    cudaStream_t stream, const char* who);

}  // namespace moekit::cuda

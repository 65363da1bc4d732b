// The grouped routing's chunked path (more than kRoutingOneCtaPairs pairs: count, scan, scatter
// over chunks) against the one-CTA kernel: the same offsets, permutation, inverse, tiles and tile
// count, bit for bit; and the permutation is stable (an expert's pairs in their original order).
// Ids include sentinels (>= E) and negative ids, which route nowhere.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/cuda_test_util.hpp"
#include "cuda/kernels/routing.cuh"

namespace moekit {
namespace {

namespace kernels = ::moekit::cuda::kernels;
using kernels::Tile;

struct Routing {
  std::vector<int> offsets, perm, inv;
  std::vector<Tile> tiles;
  int num_tiles = -1;
};

bool same_tiles(const std::vector<Tile>& a, const std::vector<Tile>& b, int n) {
  for (int i = 0; i < n; ++i)
    if (std::memcmp(&a[std::size_t(i)], &b[std::size_t(i)], sizeof(Tile)) != 0) return false;
  return true;
}

// Runs `launch(offsets, perm, inv, tiles, num_tiles)` on poisoned device buffers.
template <class Launch>
Routing run_routing(int n, int e, int slots, Launch launch) {
  int *offsets = nullptr, *perm = nullptr, *inv = nullptr, *num = nullptr;
  Tile* tiles = nullptr;
  EXPECT_EQ(cudaMalloc(&offsets, std::size_t(e + 1) * 4), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&perm, std::size_t(n) * 4), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&inv, std::size_t(n) * 4), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&tiles, std::size_t(slots) * sizeof(Tile)), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&num, 4), cudaSuccess);
  cudaMemset(perm, 0x5a, std::size_t(n) * 4);
  cudaMemset(inv, 0x5a, std::size_t(n) * 4);
  cudaMemset(tiles, 0x5a, std::size_t(slots) * sizeof(Tile));
  EXPECT_EQ(launch(offsets, perm, inv, tiles, num), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  Routing r;
  r.offsets.resize(std::size_t(e + 1));
  r.perm.resize(std::size_t(n));
  r.inv.resize(std::size_t(n));
  r.tiles.resize(std::size_t(slots));
  cudaMemcpy(r.offsets.data(), offsets, r.offsets.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(r.perm.data(), perm, r.perm.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(r.inv.data(), inv, r.inv.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(r.tiles.data(), tiles, r.tiles.size() * sizeof(Tile), cudaMemcpyDeviceToHost);
  cudaMemcpy(&r.num_tiles, num, 4, cudaMemcpyDeviceToHost);
  cudaFree(offsets);
  cudaFree(perm);
  cudaFree(inv);
  cudaFree(tiles);
  cudaFree(num);
  return r;
}

struct Case {
  int T, K, E, bm;
};

TEST(CudaRouting, ChunkedMatchesOneCtaAndIsStable) {
  MOEKIT_SKIP_WITHOUT_GPU();
  // 5 chunks with a short last one, 64 chunks, few experts (long runs), E = 1000 (most threads
  // of the scan busy), and more pairs than kMaxRoutingChunks chunks of the minimum size.
  for (const Case c : {Case{600, 8, 128, 128}, Case{8192, 8, 128, 128}, Case{5000, 2, 8, 64}, Case{3001, 4, 1000, 16},
                       Case{140000, 8, 256, 128}}) {
    SCOPED_TRACE("T = " + std::to_string(c.T) + ", K = " + std::to_string(c.K) + ", E = " + std::to_string(c.E));
    const int n = c.T * c.K;
    const int chunks = kernels::routing_chunks(n);
    ASSERT_GT(chunks, 1);
    ASSERT_LE(chunks, kernels::kMaxRoutingChunks);
    std::mt19937 rng(7u + unsigned(n));
    std::uniform_int_distribution<int> pick(0, c.E - 1), odd(0, 99);
    std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
    for (auto& id : ids) {
      const int r = odd(rng);
      id = r == 0 ? c.E : r == 1 ? -3 : pick(rng);  // 1% sentinels, 1% negative ids
    }
    std::int32_t* d_ids = nullptr;
    int* counts = nullptr;
    ASSERT_EQ(cudaMalloc(&d_ids, ids.size() * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&counts, std::size_t(chunks) * c.E * 4), cudaSuccess);
    cudaMemcpy(d_ids, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice);
    const int slots = (n + c.bm - 1) / c.bm + std::min(c.E, n);

    const Routing one = run_routing(n, c.E, slots, [&](int* o, int* p, int* i, Tile* t, int* nt) {
      kernels::grouped_routing_kernel<std::int32_t>
          <<<1, kernels::kRoutingThreads>>>(d_ids, c.K, c.T, c.K, c.E, c.bm, o, p, i, t, nt);
      return cudaGetLastError();
    });
    const Routing chunked = run_routing(n, c.E, slots, [&](int* o, int* p, int* i, Tile* t, int* nt) {
      return kernels::launch_grouped_routing(d_ids, c.K, c.T, c.K, c.E, c.bm, o, p, i, t, nt, counts, nullptr);
    });
    cudaFree(d_ids);
    cudaFree(counts);

    EXPECT_EQ(one.offsets, chunked.offsets);
    EXPECT_EQ(one.inv, chunked.inv);
    ASSERT_EQ(one.num_tiles, chunked.num_tiles);
    ASSERT_GT(one.num_tiles, 0);
    EXPECT_TRUE(same_tiles(one.tiles, chunked.tiles, one.num_tiles));
    const int routed = one.offsets[std::size_t(c.E)];
    for (int s = 0; s < routed; ++s) ASSERT_EQ(one.perm[std::size_t(s)], chunked.perm[std::size_t(s)]) << "slot " << s;

    // The contract itself, on the chunked result: inv and perm invert each other, pairs of one
    // expert sit in [offsets[e], offsets[e + 1]) in their original order, unrouted pairs get -1.
    int expected_routed = 0;
    for (int p = 0; p < n; ++p) {
      const int id = ids[std::size_t(p)];
      const int pos = chunked.inv[std::size_t(p)];
      if (id < 0 || id >= c.E) {
        EXPECT_EQ(pos, -1) << "pair " << p;
        continue;
      }
      ++expected_routed;
      ASSERT_GE(pos, chunked.offsets[std::size_t(id)]) << "pair " << p;
      ASSERT_LT(pos, chunked.offsets[std::size_t(id) + 1]) << "pair " << p;
      ASSERT_EQ(chunked.perm[std::size_t(pos)], p);
    }
    EXPECT_EQ(routed, expected_routed);
    for (int e = 0; e < c.E; ++e)
      for (int s = chunked.offsets[std::size_t(e)] + 1; s < chunked.offsets[std::size_t(e) + 1]; ++s)
        ASSERT_LT(chunked.perm[std::size_t(s) - 1], chunked.perm[std::size_t(s)]) << "expert " << e;
  }
}

}  // namespace
}  // namespace moekit

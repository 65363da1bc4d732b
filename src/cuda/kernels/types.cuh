// moekit CUDA kernels: element conversions and the tile list every grouped kernel reads.
// Framework-free: raw pointers and template parameters only (no moekit types).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moekit::cuda::kernels {

// One block of rows that share an expert: rows [row0, row0 + rows) of the (sorted) pair order.
// Written on the device by the routing preparation, so no launch needs the routing on the host.
struct alignas(16) Tile {
  int expert;
  int row0;
  int rows;   // 0: nothing to do (a sentinel pair, or a slot past the last tile)
  int group;  // the tile's raster group (sorted tiles): (width << 16) | position, raster_group_word
};

// The GEMMs walk (tile, weight slice) items group by group (item_tile, gemm_tc.cuh). An expert's
// nt tiles form ceil(nt / kRasterGroupTiles) groups of consecutive tiles, as equal as they can be;
// a group never spans two experts. Word of the expert's j-th tile:
inline constexpr int kRasterGroupTiles = 16;
__host__ __device__ inline int raster_group_word(int j, int nt) {
  const int groups = (nt + kRasterGroupTiles - 1) / kRasterGroupTiles;
  const int width0 = (nt + groups - 1) / groups;
  const int g = j / width0;
  const int width = nt - g * width0 < width0 ? nt - g * width0 : width0;
  return (width << 16) | (j - g * width0);
}

template <class T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }

// Round to nearest even, as the host conversions and the reference do.
template <class T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

// Two outputs rounded as two from_f32 into one 4-byte word (the first in the low half, i.e. at
// the lower address).
template <class T> __device__ __forceinline__ unsigned pack_pair(float a, float b);
template <> __device__ __forceinline__ unsigned pack_pair<__nv_bfloat16>(float a, float b) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
  unsigned bits;
  __builtin_memcpy(&bits, &v, sizeof(bits));
  return bits;
}
template <> __device__ __forceinline__ unsigned pack_pair<__half>(float a, float b) {
  const __half2 v = __floats2half2_rn(a, b);
  unsigned bits;
  __builtin_memcpy(&bits, &v, sizeof(bits));
  return bits;
}

// The inverse: the two 16-bit elements of a 4-byte word as fp32, exactly.
template <class T> __device__ __forceinline__ float2 unpack_pair(unsigned bits);
template <> __device__ __forceinline__ float2 unpack_pair<__nv_bfloat16>(unsigned bits) {
  return make_float2(__uint_as_float(bits << 16), __uint_as_float(bits & 0xffff0000u));
}
template <> __device__ __forceinline__ float2 unpack_pair<__half>(unsigned bits) {
  return make_float2(__half2float(__ushort_as_half(static_cast<unsigned short>(bits & 0xffffu))),
                     __half2float(__ushort_as_half(static_cast<unsigned short>(bits >> 16))));
}

// Two adjacent 16-bit outputs in one 4-byte store (p 4-byte aligned): the GEMM epilogues write
// (column, column + 1) pairs, and one store each halves their stores.
template <class T>
__device__ __forceinline__ void store_pair(T* p, float a, float b) {
  *reinterpret_cast<unsigned*>(p) = pack_pair<T>(a, b);
}

// An expert id is usable only when 0 <= id < E. Sentinels (>= E) contribute nothing by contract;
// negative ids are errors the host cannot see without a sync, so the kernels treat them exactly
// like sentinels instead of ever indexing with them.
template <class Id>
__device__ __forceinline__ int expert_or_none(Id id, int experts) {
  return (id >= Id(0) && id < Id(experts)) ? int(id) : experts;
}

}  // namespace moekit::cuda::kernels

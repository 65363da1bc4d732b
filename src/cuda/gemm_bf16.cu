// Instantiates the grouped GEMMs for bf16 in a unit of their own, so the dtypes compile in parallel.
#include "cuda/kernels/gemm_dispatch.cuh"

template cudaError_t moekit::cuda::kernels::launch_grouped_gemm<__nv_bfloat16>(const GroupedGemmParams&, bool, bool, int, int,
                                                                   cudaStream_t);

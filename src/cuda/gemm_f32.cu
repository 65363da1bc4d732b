// Instantiates the grouped GEMMs for f32 in a unit of their own, so the dtypes compile in parallel.
#include "cuda/kernels/gemm_dispatch.cuh"

template cudaError_t moekit::cuda::kernels::launch_grouped_gemm<float>(const GroupedGemmParams&, bool, bool, int, int,
                                                                   cudaStream_t);

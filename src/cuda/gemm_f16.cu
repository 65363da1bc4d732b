// Instantiates the grouped GEMMs for f16 in a unit of their own, so the dtypes compile in parallel.
#include "cuda/kernels/gemm_dispatch.cuh"

template cudaError_t moekit::cuda::kernels::launch_grouped_gemm<__half>(const GroupedGemmParams&, bool, bool, int, int,
                                                                   cudaStream_t);

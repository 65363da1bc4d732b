// The CUDA entry points of the CLI in a build without CUDA. Unreachable in practice (no CUDA
// backend is registered, so --device cuda stops at backend selection) but they must link, and if
// reached they say why in one line.
#if !MOEKIT_HAVE_CUDA

#include "bench.hpp"
#include "cli.hpp"

namespace moekit_cli {

namespace {
[[noreturn]] void no_cuda() { usage("this build of moekit has no CUDA support (configure with -DMOEKIT_CUDA=ON)"); }
}  // namespace

GpuDescription describe_gpu() { no_cuda(); }
std::string gpu_text(const GpuDescription&) { no_cuda(); }
Ceilings measure_cuda_ceilings(moekit::DType, int) { no_cuda(); }
std::uint64_t cuda_ceiling_memory_bytes(moekit::DType) { no_cuda(); }
void check_device_memory(const BenchPlan&) { no_cuda(); }
std::vector<BenchRow> run_bench_cuda(const BenchPlan&, const Ceilings&) { no_cuda(); }

}  // namespace moekit_cli

#endif  // !MOEKIT_HAVE_CUDA
